/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_VERSION_H
#define GPS_HOOK_VERSION_H

/* The project's version; the Makefile may set it with -DGPS_VERSION="...". */
#ifndef GPS_VERSION
#define GPS_VERSION "0.1.0"
#endif

#endif
