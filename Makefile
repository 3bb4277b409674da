# GitPubSub: one non-recursive Makefile for the whole tree (STYLE 9).
# Variant builds (asan, tsan) run this same file again with another BUILD folder.

BUILD     ?= build
CC        ?= cc
CSTD       = -std=c11
CPPFLAGS  += -I. -D_GNU_SOURCE
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
LIBS_broker   = $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
LIBS_frontend = $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
LIBS_hook     = $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null)
LIBS_gpsctl   =
LIBS_tests    = -lpthread

# Quiet by default, like the kernel: `make V=1` shows the commands.
ifeq ($(V),1)
Q =
msg = @true
else
Q = @
msg = @printf '  %-6s %s\n'
endif

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin

# --- sources -------------------------------------------------------------------------------
COMMON_SRC   = $(wildcard common/*.c)
SHM_SRC      = shm/ring.c shm/topic.c
WRITER_SRC   = shm/ring-writer.c
BROKER_SRC   = $(filter-out broker/main.c,$(wildcard broker/*.c))
FRONTEND_SRC = $(filter-out frontend/main.c,$(wildcard frontend/*.c))
HOOK_SRC     = $(filter-out hook/main.c,$(wildcard hook/*.c))
UNIT_SRC     = $(wildcard tests/unit/t-*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON   = $(BUILD)/lib/libcommon.a
LIB_SHM      = $(BUILD)/lib/libshm.a
LIB_WRITER   = $(BUILD)/lib/libringwriter.a
LIB_BROKER   = $(BUILD)/lib/libbroker.a
LIB_FRONTEND = $(BUILD)/lib/libfrontend.a
LIB_HOOK     = $(BUILD)/lib/libhook.a

PROGS = $(BUILD)/gitpubsub-broker $(BUILD)/gitpubsub-frontend $(BUILD)/gpsctl
ifneq ($(wildcard hook/main.c),)
PROGS += $(BUILD)/gitpubsub-hook
endif
SCRIPTS = $(BUILD)/gitpubsub-run
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%.t,$(UNIT_SRC))

ALL_OBJ = $(call obj,$(COMMON_SRC) $(SHM_SRC) $(WRITER_SRC) $(BROKER_SRC) broker/main.c \
	  $(FRONTEND_SRC) frontend/main.c gpsctl/main.c $(HOOK_SRC) $(wildcard hook/main.c) \
	  $(UNIT_SRC))

.PHONY: all check unit e2e asan tsan check-tsan lint analyze format format-check run deps \
	install uninstall clean bench
.DEFAULT_GOAL := all

all: $(PROGS) $(SCRIPTS) $(UNIT_TESTS)

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
$(LIB_FRONTEND): $(call obj,$(FRONTEND_SRC)) ; $(archive)
$(LIB_HOOK): $(call obj,$(HOOK_SRC)) ; $(archive)

# Only the broker (and the ring tests) link the ring writer: the Makefile says who writes.
$(BUILD)/gitpubsub-broker: $(call obj,broker/main.c) $(LIB_BROKER) $(LIB_WRITER) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_broker)

$(BUILD)/gitpubsub-frontend: $(call obj,frontend/main.c) $(LIB_FRONTEND) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_frontend)

$(BUILD)/gpsctl: $(call obj,gpsctl/main.c) $(LIB_SHM) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_gpsctl)

$(BUILD)/gitpubsub-hook: $(call obj,hook/main.c) $(LIB_HOOK) $(LIB_COMMON)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_hook)

$(BUILD)/gitpubsub-run: scripts/gitpubsub-run
	@mkdir -p $(@D)
	$(Q)install -m 0755 $< $@

$(BUILD)/tests/%.t: $(call obj,tests/unit/%.c) $(LIB_BROKER) $(LIB_FRONTEND) $(LIB_WRITER) $(LIB_SHM) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_tests) $(LIBS_broker)

-include $(ALL_OBJ:.o=.d)

# --- running and testing ---------------------------------------------------------------------
deps:
	@scripts/install-deps

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/gitpubsub-run --listen 127.0.0.1:2069

unit: all
	prove -f $(UNIT_TESTS)

e2e: all
	GPS_BUILD=$(abspath $(BUILD)) prove -f --timer --exec 'bats --tap' tests/*.bats

# make check: the whole suite, then the sanitizer build's unit and end-to-end tests.
check: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-tests $(BUILD) plain
	@$(MAKE) --no-print-directory asan

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" HARDEN= all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-tests build/asan asan

TSAN_FLAGS = -O1 -g -fsanitize=thread
tsan check-tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan CFLAGS="$(TSAN_FLAGS)" HARDEN= \
		build/tsan/tests/t-ring.t
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(abspath tests/tsan.supp)" prove -f build/tsan/tests/t-ring.t

# --- static analysis -------------------------------------------------------------------------
C_SOURCES = $(COMMON_SRC) $(SHM_SRC) $(WRITER_SRC) $(wildcard broker/*.c frontend/*.c hook/*.c gpsctl/*.c) $(UNIT_SRC)
C_HEADERS = $(wildcard common/*.h shm/*.h broker/*.h frontend/*.h hook/*.h gpsctl/*.h tests/*.h)
SHELL_SCRIPTS = scripts/install-deps scripts/run-tests scripts/gitpubsub-run tests/lib.bash .ci/run

format:
	clang-format -i $(C_SOURCES) $(C_HEADERS)
format-check:
	clang-format --dry-run -Werror $(C_SOURCES) $(C_HEADERS)
lint: format-check
	clang-tidy --quiet $(C_SOURCES) -- $(CPPFLAGS) $(CSTD)
	cppcheck --quiet --enable=warning,style,performance,portability --inline-suppr \
		--error-exitcode=1 -I. -D_GNU_SOURCE --suppress=missingIncludeSystem $(C_SOURCES)
	shellcheck -x $(SHELL_SCRIPTS) tests/*.bats
analyze:
	scan-build --status-bugs $(MAKE) BUILD=build/scan all
	$(MAKE) BUILD=build/fanalyzer CFLAGS="-O1 -g -fanalyzer" all

clean:
	rm -rf build
