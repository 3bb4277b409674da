/* SPDX-License-Identifier: MIT */
#ifndef GPS_TESTS_TAP_H
#define GPS_TESTS_TAP_H

/*
 * A small TAP emitter for the unit tests: prove reads what these print.
 *   ok(cond, "name %d", ...)      one test point
 *   is(got, want, "name")         integers, printing both on failure
 *   is_str(got, want, "name")     strings
 *   diag("...")                   a comment line
 *   return done_testing();        the plan, and the exit code (0 only if every point passed)
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed;

__attribute__((format(printf, 2, 3), unused)) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_run++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#define is(got, want, ...)                                                    \
	do {                                                                  \
		long long got_ = (long long)(got), want_ = (long long)(want); \
		if (!ok(got_ == want_, __VA_ARGS__))                          \
			diag("  got %lld, want %lld", got_, want_);           \
	} while (0)

#define is_str(got, want, ...)                                                   \
	do {                                                                     \
		const char *got_ = (got), *want_ = (want);                       \
		if (!ok(got_ && want_ && strcmp(got_, want_) == 0, __VA_ARGS__)) \
			diag("  got '%s', want '%s'", got_ ? got_ : "(null)",    \
			     want_ ? want_ : "(null)");                          \
	} while (0)

__attribute__((unused)) static int done_testing(void)
{
	printf("1..%d\n", tap_run);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif
