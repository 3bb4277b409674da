# GitPubSub: one non-recursive Makefile for the whole tree (STYLE 9).
# Variant builds (asan, tsan) run this same file again with another BUILD folder.

BUILD     ?= build
# The version every program reports (--version, the hook's User-Agent, the Server header) and
# the Debian package's: written in one place, the first line of debian/changelog, "gitpubsub
# (1.0.0) unstable; ...", where dpkg needs it. Every object depends on that file (below).
GPS_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
CC        ?= cc
CSTD       = -std=c11
CPPFLAGS  += -I. -D_GNU_SOURCE -DGPS_VERSION='"$(GPS_VERSION)"'
WARN       = -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wconversion -Wstrict-prototypes \
             -Wmissing-prototypes -Wold-style-definition -Wvla -Wimplicit-fallthrough \
             -Wcast-qual -Wwrite-strings -Wpointer-arith -Wundef -Wnull-dereference
WERROR    ?= -Werror
HARDEN     = -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection \
             -fcf-protection -fPIE
LDHARDEN   = -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack
CFLAGS    ?= -O2 -g
SANFLAGS  ?=
ALL_CFLAGS = $(CSTD) $(WARN) $(WERROR) $(HARDEN) $(CFLAGS) $(SANFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDHARDEN) $(LDFLAGS) $(SANFLAGS)

PKG_CONFIG ?= pkg-config
# libnats and liburcu: cluster mode (broker/cluster.h), linked always, used with [Cluster] nats
LIBS_broker   = $(shell $(PKG_CONFIG) --libs libsystemd libnats liburcu-cds 2>/dev/null) -lpthread
# The frontend is static and has no libsystemd (see "the frontend's C library" below); of
# liburcu it takes the futex wrappers (urcu/futex.h), whose fallback lives in liburcu-common.
LIBS_frontend = -lurcu-common
LIBS_hook     = $(shell $(PKG_CONFIG) --libs libcurl libcrypto 2>/dev/null)
LIBS_gpsctl   =
LIBS_tests    = -lpthread -lurcu-common

# Quiet by default, like the kernel: `make V=1` shows the commands.
ifeq ($(V),1)
Q =
msg = @true
else
Q = @
msg = @printf '  %-6s %s\n'
endif

# Installation (STYLE 9): `make install` honours DESTDIR and the directories below, and
# `make uninstall` removes exactly what install put there. gitpubsub-broker and
# gitpubsub-frontend are not commands a person types: they live in LIBEXECDIR/gitpubsub,
# where the installed units (generated from systemd/*.in) find them.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBEXECDIR  ?= $(PREFIX)/libexec
MANDIR      ?= $(PREFIX)/share/man
# systemd's directories come from pkg-config with its prefix moved to PREFIX: /usr/local gives
# /usr/local/lib/systemd/system and /usr/local/lib/sysusers.d (both on systemd's search
# paths), /usr the distribution's own.
SYSTEMD_PC   = $(PKG_CONFIG) --define-variable=prefix=$(PREFIX) \
	       --define-variable=root_prefix=$(PREFIX) systemd
UNITDIR     ?= $(or $(shell $(SYSTEMD_PC) --variable=systemdsystemunitdir 2>/dev/null),$(PREFIX)/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell $(SYSTEMD_PC) --variable=sysusersdir 2>/dev/null),$(PREFIX)/lib/sysusers.d)
# Where every program looks for gitpubsub.cfg (CONFIG_DEFAULT_PATH in common/config.h): not
# a place to choose; tests that install into a scratch PREFIX point it elsewhere.
CONFDIR     ?= /etc/gitpubsub

# --- sources -------------------------------------------------------------------------------
COMMON_SRC   = $(wildcard common/*.c)
SHM_SRC      = shm/ring.c shm/stats.c shm/topic.c
WRITER_SRC   = shm/ring-writer.c
BROKER_SRC   = $(filter-out broker/main.c,$(wildcard broker/*.c))
FRONTEND_SRC = $(filter-out frontend/main.c,$(wildcard frontend/*.c))
HOOK_SRC     = $(filter-out hook/main.c,$(wildcard hook/*.c))
GPSCTL_SRC   = $(wildcard gpsctl/*.c)
UNIT_SRC     = $(wildcard tests/unit/t-*.c)
PAGE_OBJ     = $(BUILD)/obj/frontend/page.o

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON   = $(BUILD)/lib/libcommon.a
LIB_SHM      = $(BUILD)/lib/libshm.a
LIB_WRITER   = $(BUILD)/lib/libringwriter.a
LIB_BROKER   = $(BUILD)/lib/libbroker.a
LIB_FRONTEND = $(BUILD)/lib/libfrontend.a
LIB_HOOK     = $(BUILD)/lib/libhook.a

PROGS = $(BUILD)/gitpubsub-broker $(BUILD)/gitpubsub-frontend $(BUILD)/gpsctl \
	$(BUILD)/gitpubsub-hook
SCRIPTS = $(BUILD)/gitpubsub-run
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%.t,$(UNIT_SRC))
# The drivers of the slowloris and crash-load tests (tests/91, tests/93, tests/torture/soak.bash).
TOOLS      = $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(wildcard tests/tools/*.c))

ALL_OBJ = $(call obj,$(COMMON_SRC) $(SHM_SRC) $(WRITER_SRC) $(BROKER_SRC) broker/main.c \
	  $(FRONTEND_SRC) frontend/main.c $(GPSCTL_SRC) $(HOOK_SRC) hook/main.c \
	  $(UNIT_SRC) $(wildcard tests/tools/*.c))

.PHONY: all test-programs check unit e2e asan tsan check-tsan lint analyze format format-check \
	run deps install uninstall clean bench
.DEFAULT_GOAL := all

# make builds the programs; what only the tests run (unit tests, test drivers, the load
# generator of bench/bench.mk) is built by test-programs, which the testing targets need.
all: $(PROGS) $(SCRIPTS)
test-programs: $(UNIT_TESTS) $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(msg) CC $@
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

define archive
	@mkdir -p $(@D)
	@rm -f $@
	$(msg) AR $@
	$(Q)$(AR) rcs $@ $^
endef

$(LIB_COMMON): $(call obj,$(COMMON_SRC)) ; $(archive)
$(LIB_SHM): $(call obj,$(SHM_SRC)) ; $(archive)
$(LIB_WRITER): $(call obj,$(WRITER_SRC)) ; $(archive)
$(LIB_BROKER): $(call obj,$(BROKER_SRC)) ; $(archive)
$(LIB_FRONTEND): $(call obj,$(FRONTEND_SRC)) $(PAGE_OBJ) ; $(archive)
$(LIB_HOOK): $(call obj,$(HOOK_SRC)) ; $(archive)

# The live page (README 3.11): frontend/page.S embeds frontend/page.html with .incbin, which
# -MMD cannot see, so the page is named here; editing it rebuilds the frontend.
$(PAGE_OBJ): frontend/page.S frontend/page.html
	@mkdir -p $(@D)
	$(msg) AS $@
	$(Q)$(CC) $(CPPFLAGS) $(HARDEN) $(SANFLAGS) -c -o $@ $<

# Only the broker (and the ring tests) link the ring writer: the Makefile says who writes.
$(BUILD)/gitpubsub-broker: $(call obj,broker/main.c) $(LIB_BROKER) $(LIB_WRITER) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_broker)

# --- the frontend's C library ---------------------------------------------------------------
# One gitpubsub-frontend process serves each connection, so what it maps and touches at start-up
# is paid per subscriber (README "Performance": memory per idle subscriber, subscribers connected per
# second). It is a static PIE: no shared library to map, no dynamic loader to run. With glibc
# that still leaves glibc's own relocated data, TLS and heap, ~55 KiB in every process (a
# static PIE that only calls pause() holds 56 KiB of private pages), so the frontend is built
# against musl when musl-gcc is there (Debian: musl-tools): an idle subscriber's process holds
# ~45 KiB instead of ~85 KiB, and starts faster. FRONTEND_LIBC=glibc forces glibc. Sanitizer
# builds use glibc's dynamic runtime, which the sanitizers need.
MUSL_GCC      ?= $(shell command -v musl-gcc 2>/dev/null)
MULTIARCH     := $(shell $(CC) -print-multiarch 2>/dev/null)
MUSL_LIBDIR   ?= /usr/lib/$(patsubst %-gnu,%-musl,$(MULTIARCH))
FRONTEND_LIBC ?= $(if $(SANFLAGS),glibc,$(if $(and $(MUSL_GCC),$(wildcard $(MUSL_LIBDIR)/rcrt1.o)),musl,glibc))

ifeq ($(FRONTEND_LIBC),musl)
MUSL_OBJ  = $(patsubst %.c,$(BUILD)/musl/%.o,$(FRONTEND_SRC) frontend/main.c $(SHM_SRC) $(COMMON_SRC))
# musl ships no kernel headers: this folder shows the compiler linux/ and asm/ (the kernel's
# UAPI, which does not depend on the C library), liburcu's headers (urcu/, spread by Debian
# over /usr/include and its multiarch folder) and nothing else of /usr/include.
MUSL_KHDR = $(BUILD)/musl/include
$(MUSL_KHDR)/.stamp:
	@mkdir -p $(@D)/urcu
	$(Q)ln -sfn /usr/include/linux $(@D)/linux
	$(Q)ln -sfn /usr/include/asm-generic $(@D)/asm-generic
	$(Q)ln -sfn /usr/include/$(MULTIARCH)/asm $(@D)/asm
	$(Q)for f in /usr/include/urcu/* /usr/include/$(MULTIARCH)/urcu/*; do \
		ln -sfn "$$f" "$(@D)/urcu/$${f##*/}" || exit 1; done
	@touch $@
# liburcu-common's archive by its path: a -L to the multiarch folder would also offer musl's
# link glibc's libc.a. It needs only what musl has too (pthread, poll, errno, assert).
MUSL_URCU_A = /usr/lib/$(MULTIARCH)/liburcu-common.a

$(BUILD)/musl/%.o: %.c | $(MUSL_KHDR)/.stamp
	@mkdir -p $(@D)
	$(msg) CC $@
	$(Q)$(MUSL_GCC) $(CPPFLAGS) -idirafter $(MUSL_KHDR) $(ALL_CFLAGS) -c -o $@ $<

# musl-gcc's specs know no -static-pie: the start files for a static PIE are named here.
$(BUILD)/gitpubsub-frontend: $(MUSL_OBJ) $(PAGE_OBJ)
	$(msg) LD $@
	$(Q)$(MUSL_GCC) -static-pie -nostartfiles -Wl,-static,-pie,--no-dynamic-linker,-z,text \
		$(ALL_LDFLAGS) -o $@ $(MUSL_LIBDIR)/rcrt1.o $(MUSL_LIBDIR)/crti.o \
		$(shell $(MUSL_GCC) -print-file-name=crtbeginS.o) $^ \
		$(shell $(MUSL_GCC) -print-file-name=crtendS.o) $(MUSL_LIBDIR)/crtn.o $(MUSL_URCU_A)

-include $(MUSL_OBJ:.o=.d)
# main.c's glibc object too: the unit tests build the other frontend sources with $(CC), and a
# tool that stands in for $(CC) (scan-build) should see every frontend file.
all: $(call obj,frontend/main.c)
else
$(BUILD)/gitpubsub-frontend: $(call obj,frontend/main.c) $(LIB_FRONTEND) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) $(if $(SANFLAGS),,-static-pie) -o $@ $^ $(LIBS_frontend)
endif

$(BUILD)/gpsctl: $(call obj,$(GPSCTL_SRC)) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_gpsctl)

$(BUILD)/gitpubsub-hook: $(call obj,hook/main.c) $(LIB_HOOK) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_hook)

$(BUILD)/gitpubsub-run: scripts/gitpubsub-run
	@mkdir -p $(@D)
	$(Q)install -m 0755 $< $@

# Unit tests link every library; each pulls in only the objects it uses.
TEST_LIBS = $(LIB_BROKER) $(LIB_FRONTEND) $(LIB_HOOK) $(LIB_WRITER) $(LIB_SHM) \
	    $(LIB_COMMON)
$(BUILD)/tests/%.t: $(call obj,tests/unit/%.c) $(TEST_LIBS)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_tests) $(LIBS_broker) $(LIBS_hook)

# The test drivers: the project's flags, so a sanitizer build has sanitized drivers too.
$(BUILD)/tests/tools/%: $(call obj,tests/tools/%.c)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_tests)

-include $(ALL_OBJ:.o=.d)
# Reached only through the pattern rules above, these would be deleted as intermediate files.
.SECONDARY: $(call obj,$(UNIT_SRC) $(wildcard tests/tools/*.c))
# -MMD sees headers, not flags: a new version in debian/changelog rebuilds what compiled it in.
$(ALL_OBJ) $(MUSL_OBJ): debian/changelog

# The benchmark suite and the fuzzers keep their rules beside their sources.
-include bench/bench.mk fuzz/fuzz.mk

# --- running and testing ---------------------------------------------------------------------
# The builds that run, check and the analysers start for themselves compile this many files at
# a time (make check's own command line has no -j: .ci/run and the README say `make check`).
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
deps:
	@scripts/install-deps check

run:
	@scripts/install-deps run
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all
	exec $(BUILD)/gitpubsub-run --mux --listen 127.0.0.1:2069

unit: $(UNIT_TESTS)
	prove -f $(UNIT_TESTS)

e2e: all test-programs
	GPS_BUILD=$(abspath $(BUILD)) prove -f --timer --exec 'bats --tap' \
		$(filter-out tests/95-systemd.bats,$(wildcard tests/*.bats))

# The packages under a real booted systemd (tests/95-systemd.bats; root): make check's last stage.
.PHONY: e2e-systemd
e2e-systemd: all test-programs
	@scripts/run-tests $(BUILD) systemd

# make check: the whole suite, the sanitizer builds' tests, the fuzzers and the analysers, each
# stage to its end, then one line "N passed, M failed" (scripts/check).
check: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all test-programs
	@scripts/check $(BUILD)

# Sanitizer flags go in SANFLAGS, which both compiling and linking use.
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all
asan:
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) BUILD=build/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
		SANFLAGS="$(ASAN_FLAGS)" HARDEN= all test-programs
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-tests build/asan asan

# The thread sanitizer sees threads, not processes (STYLE 12): it runs the unit tests that start
# threads, found by their pthread_create, and ends "tsan: N passed, M failed" for scripts/check.
TSAN_TESTS = $(patsubst tests/unit/%.c,build/tsan/tests/%.t, \
	     $(shell grep -l pthread_create $(UNIT_SRC)))
tsan check-tsan:
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) BUILD=build/tsan CFLAGS="-O1 -g" \
		SANFLAGS=-fsanitize=thread HARDEN= $(TSAN_TESTS)
	@TSAN_OPTIONS="halt_on_error=1 suppressions=$(abspath tests/tsan.supp)" \
		prove -f $(TSAN_TESTS) && echo "tsan: $(words $(TSAN_TESTS)) passed, 0 failed" || \
		{ echo "tsan: 0 passed, $(words $(TSAN_TESTS)) failed"; exit 1; }

# make torture (README "Reliability"): what is too long for make check, at full size:
# fault 4 (1,000,000 publishes x 200 readers), fault 1 (tests/93-crash-load.bats) and the
# 30-minute soak (SOAK_SECONDS=N to change it). About 45 minutes; ends "torture: N passed, M failed".
.PHONY: torture
torture: deps
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all test-programs
	@tests/torture/run $(BUILD)

# --- static analysis -------------------------------------------------------------------------
C_SOURCES = $(COMMON_SRC) $(SHM_SRC) $(WRITER_SRC) $(wildcard broker/*.c frontend/*.c hook/*.c gpsctl/*.c) \
	    $(UNIT_SRC) $(wildcard tests/tools/*.c fuzz/*.c bench/*.c)
C_HEADERS = $(wildcard common/*.h shm/*.h broker/*.h frontend/*.h hook/*.h gpsctl/*.h tests/*.h fuzz/*.h bench/*.h)
SHELL_SCRIPTS = scripts/install-deps scripts/run-tests scripts/check scripts/gitpubsub-run \
		scripts/lengths \
		tests/lib.bash tests/lib-http.bash .ci/run bench/run tests/torture/run \
		tests/torture/soak.bash tests/box debian/gitpubsub.prerm debian/gitpubsub.postrm \
		$(wildcard fuzz/run-fuzz tests/browser/kill-stream)

# make static (in make check): every analyser below, each to its end, then "static: N passed,
# M failed". make lint is the quick subset; make analyze adds scan-build.
STATIC_CHECKS = format-check tidy cppcheck shellcheck lengths fanalyzer
.PHONY: static tidy cppcheck shellcheck lengths fanalyzer
static:
	@p=0; f=0; for t in $(STATIC_CHECKS); do \
		if $(MAKE) --no-print-directory $$t; then p=$$((p + 1)); \
		else f=$$((f + 1)); echo "static: $$t FAILED"; fi; \
	done; echo "static: $$p passed, $$f failed"; [ $$f -eq 0 ]

format:
	clang-format -i $(C_SOURCES) $(C_HEADERS)
format-check:
	$(msg) FORMAT "$(words $(C_SOURCES) $(C_HEADERS)) files"
	$(Q)clang-format --dry-run -Werror $(C_SOURCES) $(C_HEADERS)
# Two at a time: clang-tidy is the slowest analyser and each file is independent. One file per
# clang-tidy process: clang-tidy 14's valist checker keeps state from one file to the next, so
# the second file of a run gets a false "uninitialized va_list" at every vsnprintf(ap).
tidy:
	$(msg) TIDY "$(words $(C_SOURCES)) files"
	$(Q)printf '%s\n' $(C_SOURCES) | xargs -P2 -I{} clang-tidy --quiet {} -- $(CPPFLAGS) $(CSTD) \
		2>/dev/null
cppcheck:
	$(msg) CPPCHECK "$(words $(C_SOURCES)) files"
	$(Q)cppcheck --quiet --enable=warning,style,performance,portability --inline-suppr \
		--error-exitcode=1 $(CPPFLAGS) --suppress=missingIncludeSystem $(C_SOURCES)
shellcheck:
	$(msg) SHELLCHECK "$(words $(SHELL_SCRIPTS)) scripts and the bats files"
	$(Q)shellcheck -x $(SHELL_SCRIPTS) tests/*.bats
# Functions a reader can hold: none over 100 lines, no file over 900, in the programs' sources.
# LENGTHS_EXEMPT (empty: keep it so) names functions let through while they are being split;
# each is printed on every run.
PRODUCT_SOURCES = $(COMMON_SRC) $(SHM_SRC) $(WRITER_SRC) $(wildcard broker/*.c frontend/*.c \
		  hook/*.c gpsctl/*.c)
LENGTHS_EXEMPT ?=
lengths:
	$(Q)LENGTHS_EXEMPT="$(LENGTHS_EXEMPT)" scripts/lengths 100 900 $(PRODUCT_SOURCES)
# gcc's -fanalyzer, warnings as errors, in a build folder of its own. gcc 12's analyzer loses
# track of buffers that frontend/publish.c and stream.c allocate into their per-connection
# structs (struct pub, struct sub: freed by publish_free(), stream_free() and write_pend()) and
# calls each one a leak ("leak of '<unknown>'"); ASan's leak checker, which runs the same code
# in make check, finds none. Only that check, only those files, only under -fanalyzer.
ANALYZER_LEAK_FP = frontend/publish frontend/stream
$(foreach f,$(ANALYZER_LEAK_FP),$(BUILD)/obj/$(f).o $(BUILD)/musl/$(f).o): \
	ALL_CFLAGS += $(if $(findstring -fanalyzer,$(CFLAGS)),-Wno-analyzer-malloc-leak)
fanalyzer:
	$(msg) FANALYZE $(BUILD)/fanalyzer
	$(Q)$(MAKE) --no-print-directory -j$(BUILD_JOBS) BUILD=$(BUILD)/fanalyzer \
		CFLAGS="-O1 -g -fanalyzer" all test-programs
lint: format-check tidy cppcheck shellcheck lengths
analyze: fanalyzer
	scan-build --status-bugs $(MAKE) BUILD=build/scan all test-programs

# --- installing ------------------------------------------------------------------------------
INSTALL        ?= install
INSTALL_BIN     = $(BUILD)/gpsctl $(BUILD)/gitpubsub-hook
INSTALL_LIBEXEC = $(BUILD)/gitpubsub-broker $(BUILD)/gitpubsub-frontend
UNIT_TEMPLATES  = gitpubsub-broker.service gitpubsub-frontend.service gitpubsub-accept@.service
UNIT_SOCKETS    = gitpubsub.socket gitpubsub-accept.socket
UNITS           = $(UNIT_SOCKETS) $(UNIT_TEMPLATES)
# gitpubsub.8 documents the service, its configuration and its units; the other section-8
# and section-5 names are .so links to it.
MAN_PAGES       = man/gpsctl.1 man/gitpubsub-hook.1 man/gitpubsub.cfg.5 man/gitpubsub.8 \
		  man/gitpubsub-broker.8 man/gitpubsub-frontend.8
INSTALL_DIRS    = $(BINDIR) $(LIBEXECDIR)/gitpubsub $(UNITDIR) $(SYSUSERSDIR) $(CONFDIR) \
		  $(MANDIR)/man1 $(MANDIR)/man5 $(MANDIR)/man8

# Directories are made with mkdir -p, never `install -d`, which would reset the mode of one
# that exists (/usr/local/bin is 2775 on some systems). The configuration file is installed
# only when absent: an administrator's edits are never overwritten.
install: $(PROGS)
	$(Q)umask 022 && for d in $(INSTALL_DIRS); do mkdir -p "$(DESTDIR)$$d" || exit 1; done
	$(Q)$(INSTALL) -m 0755 $(INSTALL_BIN) "$(DESTDIR)$(BINDIR)"
	$(Q)$(INSTALL) -m 0755 $(INSTALL_LIBEXEC) "$(DESTDIR)$(LIBEXECDIR)/gitpubsub"
	@mkdir -p $(BUILD)/systemd
	$(Q)for u in $(UNIT_TEMPLATES); do \
		sed -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' "systemd/$$u.in" >"$(BUILD)/systemd/$$u" && \
		$(INSTALL) -m 0644 "$(BUILD)/systemd/$$u" "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; \
	done
	$(Q)for u in $(UNIT_SOCKETS); do \
		$(INSTALL) -m 0644 "systemd/$$u" "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; \
	done
	$(Q)$(INSTALL) -m 0644 systemd/gitpubsub.sysusers "$(DESTDIR)$(SYSUSERSDIR)/gitpubsub.conf"
	$(Q)for m in $(MAN_PAGES); do \
		$(INSTALL) -m 0644 "$$m" "$(DESTDIR)$(MANDIR)/man$${m##*.}/" || exit 1; \
	done
	$(Q)if [ -e "$(DESTDIR)$(CONFDIR)/gitpubsub.cfg" ]; then \
		echo "  KEEP   $(DESTDIR)$(CONFDIR)/gitpubsub.cfg (exists; etc/gitpubsub.cfg has the defaults)"; \
	else \
		$(INSTALL) -m 0644 etc/gitpubsub.cfg "$(DESTDIR)$(CONFDIR)/gitpubsub.cfg"; \
	fi
	$(msg) INSTALL "$(DESTDIR)$(PREFIX) (units in $(DESTDIR)$(UNITDIR))"

# The configuration file goes only if it is still the one install put there; its folder and
# LIBEXECDIR/gitpubsub go only once empty. Shared folders (bin, man1, ...) stay.
uninstall:
	$(Q)rm -f "$(DESTDIR)$(BINDIR)/gpsctl" "$(DESTDIR)$(BINDIR)/gitpubsub-hook"
	$(Q)rm -f $(foreach p,$(notdir $(INSTALL_LIBEXEC)),"$(DESTDIR)$(LIBEXECDIR)/gitpubsub/$(p)")
	$(Q)rm -f $(foreach u,$(UNITS),"$(DESTDIR)$(UNITDIR)/$(u)")
	$(Q)rm -f "$(DESTDIR)$(SYSUSERSDIR)/gitpubsub.conf"
	$(Q)for m in $(MAN_PAGES); do \
		f=$${m##*/}; rm -f "$(DESTDIR)$(MANDIR)/man$${f##*.}/$$f" || exit 1; \
	done
	$(Q)if cmp -s etc/gitpubsub.cfg "$(DESTDIR)$(CONFDIR)/gitpubsub.cfg"; then \
		rm -f "$(DESTDIR)$(CONFDIR)/gitpubsub.cfg"; \
	elif [ -e "$(DESTDIR)$(CONFDIR)/gitpubsub.cfg" ]; then \
		echo "  KEEP   $(DESTDIR)$(CONFDIR)/gitpubsub.cfg (changed since it was installed)"; \
	fi
	$(Q)rmdir "$(DESTDIR)$(LIBEXECDIR)/gitpubsub" "$(DESTDIR)$(CONFDIR)" 2>/dev/null || true
	$(msg) UNINSTALL "$(DESTDIR)$(PREFIX)"

# make deb: the Debian packages (debian/), built by dpkg-buildpackage from a clean copy of the
# tree (the files git tracks, as they are in the working tree: no build output, nothing
# untracked), so that they are what a fresh clone gives. The .debs land in $(BUILD)/, and
# lintian must find no error and no warning in them.
DEB_DIR = $(BUILD)/deb
.PHONY: deb
deb:
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/gitpubsub-$(GPS_VERSION)
	$(Q)git ls-files -z | tar --null --no-recursion --ignore-failed-read -T - -cf - | \
		tar -xf - -C $(DEB_DIR)/gitpubsub-$(GPS_VERSION)
	$(msg) DEB "$(DEB_DIR)/gitpubsub-$(GPS_VERSION)"
	$(Q)cd $(DEB_DIR)/gitpubsub-$(GPS_VERSION) && dpkg-buildpackage -us -uc -b -j$(BUILD_JOBS) \
		>../build.log 2>&1 || { tail -n 40 ../build.log; exit 1; }
	$(Q)rm -f $(BUILD)/gitpubsub*_*.deb && cp $(DEB_DIR)/*.deb $(BUILD)/
	$(msg) LINTIAN "$(DEB_DIR)/gitpubsub_$(GPS_VERSION)_*.changes"
	$(Q)lintian --fail-on error,warning $(DEB_DIR)/*.changes
	@ls $(BUILD)/gitpubsub*_$(GPS_VERSION)_*.deb

clean:
	rm -rf build
