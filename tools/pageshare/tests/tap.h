/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal TAP producer for the host-side unit tests: ok() prints one
 * test line, tap_done() the plan and the exit status.
 */

#ifndef PAGESHARE_TAP_H
#define PAGESHARE_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif

static int tap_count;
static int tap_failed;

__printf(2, 3)
static inline bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

__printf(1, 2)
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed)
		diag("%d of %d tests failed", tap_failed, tap_count);
	return tap_failed ? 1 : 0;
}

#endif /* PAGESHARE_TAP_H */
