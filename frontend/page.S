/* SPDX-License-Identifier: MIT */
/*
 * The live page (README 3.11), frontend/page.html, embedded in gitpubsub-frontend at build time:
 * one file to edit, no generator, no new build dependency. The Makefile rebuilds this object
 * when page.html changes (.incbin is invisible to -MMD). The path is relative to the top of the
 * tree, where the one Makefile runs the compiler. C sees (frontend/sse.h):
 *   const char sse_page[sse_page_len]: the bytes, not NUL-terminated;
 *   const uint64_t sse_page_len: their number, computed here, so C never subtracts pointers to
 *   two different objects.
 */
#if defined(__CET__)
#include <cet.h> /* marks the object IBT/SHSTK-compatible, so it keeps -fcf-protection on */
#endif

	.section .rodata
	.globl	sse_page
	.hidden	sse_page
	.type	sse_page, @object
sse_page:
	.incbin	"frontend/page.html"
.Lsse_page_end:
	.size	sse_page, .Lsse_page_end - sse_page

	.balign	8
	.globl	sse_page_len
	.hidden	sse_page_len
	.type	sse_page_len, @object
sse_page_len:
	.quad	.Lsse_page_end - sse_page
	.size	sse_page_len, 8

	/* no executable stack wanted: without this note ld warns and assumes one */
	.section .note.GNU-stack, "", @progbits
