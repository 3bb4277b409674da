# The benchmark suite (issue 5; bench/README.md), included by the top Makefile.
#
#   make bench        install nginx, nchan and gnuplot if missing, build, run every scenario
#                     against our service and nchan, write bench/results/latest.md and plots
#   make bench-smoke  every scenario once, tiny, against our service only: checks, in seconds
#
# REPS=N sets the number of repetitions of `make bench` (default 3).
#
# The load generator is built with the project's flags into $(BUILD)/bench/loadgen, as part of
# `all`, so every variant build (asan, ...) has its own and the smoke test uses it.

LOADGEN = $(BUILD)/bench/loadgen

all: $(LOADGEN)

$(LOADGEN): $(call obj,bench/loadgen.c)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm

-include $(BUILD)/obj/bench/loadgen.d

.PHONY: bench bench-smoke
bench:
	@scripts/install-deps bench
	@$(MAKE) --no-print-directory all
	bench/run --build $(BUILD) $(if $(REPS),--reps $(REPS))

bench-smoke: all
	bench/run --smoke --build $(BUILD)

# `make format-check` and `make lint` cover the suite too (STYLE 10).
.PHONY: bench-format-check bench-lint
format-check: bench-format-check
lint: bench-lint
bench-format-check:
	clang-format --dry-run -Werror bench/loadgen.c
bench-lint:
	cppcheck --quiet --enable=warning,style,performance,portability --inline-suppr \
		--error-exitcode=1 -I. -D_GNU_SOURCE --suppress=missingIncludeSystem bench/loadgen.c
	shellcheck -x bench/run
