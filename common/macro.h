/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_MACRO_H
#define GPS_COMMON_MACRO_H

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define _must_check_   __attribute__((warn_unused_result))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define likely(x)      __builtin_expect(!!(x), 1)
#define unlikely(x)    __builtin_expect(!!(x), 0)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Round x up to a multiple of the power of two a. */
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))

#define STRLEN(s) (sizeof("" s "") - 1)

#endif
