# The benchmark suite (README "Performance"; bench/README.md), included by the top Makefile.
#
#   make bench        install nginx, nchan, gnuplot, nats-server and redis-server if missing,
#                     build, run every scenario against our service and nchan (scenario 10:
#                     three nodes on NATS against three nchan on Redis), write
#                     bench/results/latest.md and plots
#   make bench-smoke  every scenario once, tiny, against our service only: checks, in seconds
#
# REPS=N sets the number of repetitions of `make bench` (default 3).
#
# The load generator is built with the project's flags into $(BUILD)/bench/loadgen, as part of
# test-programs, so every variant build (asan, ...) has its own and the smoke test uses it.

LOADGEN = $(BUILD)/bench/loadgen

test-programs: $(LOADGEN)

# shm/topic.c's hex digits read the chunk sizes: the library is linked, not copied.
$(LOADGEN): $(call obj,bench/loadgen.c) $(LIB_SHM)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm

-include $(BUILD)/obj/bench/loadgen.d

# gcc 12's -fanalyzer reports s->line (grown by realloc in sub_text(), freed with the
# subscribers at exit) as leaked once it follows the option table's stores: a false positive
# no rewrite of sub_text() cleared. Only that check, only this file, only under -fanalyzer.
$(call obj,bench/loadgen.c): ALL_CFLAGS += $(if $(findstring -fanalyzer,$(CFLAGS)),-Wno-analyzer-malloc-leak)

.PHONY: bench bench-smoke
bench:
	@scripts/install-deps bench
	@$(MAKE) --no-print-directory all $(LOADGEN)
	bench/run --build $(BUILD) $(if $(REPS),--reps $(REPS))

bench-smoke: all $(LOADGEN)
	bench/run --smoke --build $(BUILD)

# The top Makefile's static analysis covers the suite: bench/*.c is in C_SOURCES (format-check,
# tidy, cppcheck) and bench/run in SHELL_SCRIPTS (shellcheck).
