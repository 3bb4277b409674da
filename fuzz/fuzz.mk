# fuzz/fuzz.mk: the libFuzzer harnesses (README "Reliability"), included by the top Makefile.
#
#   make fuzz         build every harness, run each for FUZZ_TIME seconds (default 60), two at a
#                     time, on a copy of its corpus under $(BUILD)/fuzz/corpus; fails on any crash,
#                     sanitizer report, timeout or leak; then make fuzz-cov's report on the
#                     grown corpora
#   make fuzz-merge   add the inputs of the grown corpus that reach new code to fuzz/corpus/
#   make fuzz-cov     line coverage of the parsers by the corpus; fails below FUZZ_COV_MIN
#                     percent for frontend/http.c, FUZZ_RING_COV_MIN for shm/ring.c
#   make fuzz-seeds   regenerate fuzz/corpus/ring/writer-* and owner-* with the ring writer
#
# The project's sources are compiled again with clang and the fuzz flags into their own object
# folder, $(BUILD)/fuzz/obj; nothing here touches the normal build's objects.

FUZZ_CC       ?= clang
FUZZ_TIME     ?= 60
FUZZ_JOBS     ?= 2
FUZZ_COV_MIN  ?= 85
FUZZ_RING_COV_MIN ?= 90
FUZZ_DIR       = $(BUILD)/fuzz
FUZZ_NAMES     = http json topic config ring
FUZZ_SAN       = -fsanitize=address,undefined -fno-sanitize-recover=all
# No HARDEN: _FORTIFY_SOURCE's checked copies hide over-reads from ASan's interceptors.
FUZZ_CFLAGS    = $(CSTD) $(WARN) $(WERROR) -O1 -g -fno-omit-frame-pointer -MMD -MP
FUZZ_PROFDATA ?= $(firstword $(shell command -v llvm-profdata-14 llvm-profdata 2>/dev/null) llvm-profdata)
FUZZ_LLVM_COV ?= $(firstword $(shell command -v llvm-cov-14 llvm-cov 2>/dev/null) llvm-cov)

# What each harness tests: compiled with coverage instrumentation, the rest of the tree not.
FUZZ_SRC_http   = frontend/http.c
FUZZ_SRC_json   = broker/json.c common/utf8.c
FUZZ_SRC_topic  = shm/topic.c
FUZZ_SRC_config = common/config.c common/log.c common/trust.c
FUZZ_SRC_ring   = shm/ring.c shm/ring-writer.c shm/topic.c common/io.c

FUZZ_BINS      = $(patsubst %,$(FUZZ_DIR)/fuzz-%,$(FUZZ_NAMES))
FUZZ_COV_BINS  = $(patsubst %,$(FUZZ_DIR)/cov/fuzz-%,$(FUZZ_NAMES))
FUZZ_RING_SEED = $(FUZZ_DIR)/ring-seed

.PHONY: fuzz fuzz-build fuzz-merge fuzz-cov fuzz-seeds

# fuzzer-no-link: coverage counters and comparison hooks for libFuzzer to steer by, no main().
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(msg) FUZZCC $@
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

# Source-based coverage, no sanitizers: what the corpus reaches, line by line.
$(FUZZ_DIR)/cov/obj/%.o: %.c
	@mkdir -p $(@D)
	$(msg) COVCC $@
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fprofile-instr-generate -fcoverage-mapping \
		-c -o $@ $<

define fuzz_harness
$(FUZZ_DIR)/fuzz-$(1): $(FUZZ_DIR)/obj/fuzz/fuzz-$(1).o $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SRC_$(1)))
	$$(msg) FUZZLD $$@
	$$(Q)$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^

$(FUZZ_DIR)/cov/fuzz-$(1): $(FUZZ_DIR)/cov/obj/fuzz/fuzz-$(1).o $(FUZZ_DIR)/cov/obj/fuzz/driver.o \
		$(patsubst %.c,$(FUZZ_DIR)/cov/obj/%.o,$(FUZZ_SRC_$(1)))
	$$(msg) COVLD $$@
	$$(Q)$$(FUZZ_CC) -fprofile-instr-generate -fcoverage-mapping -o $$@ $$^
endef
$(foreach h,$(FUZZ_NAMES),$(eval $(call fuzz_harness,$(h))))

# The ring seed generator is an ordinary program of the tree: the writer API, the normal build.
$(FUZZ_RING_SEED): $(call obj,fuzz/ring-seed.c) $(LIB_WRITER) $(LIB_SHM) $(LIB_COMMON)
	@mkdir -p $(@D)
	$(msg) LD $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

fuzz-build: $(FUZZ_BINS) $(FUZZ_RING_SEED)

# Then the coverage of the corpora the run grew, so that make check prints the parser's figure
# and fails below FUZZ_COV_MIN (README "Reliability").
fuzz: fuzz-build $(FUZZ_COV_BINS)
	@FUZZ_CORPUS=fuzz/corpus fuzz/run-fuzz run $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ_JOBS) $(FUZZ_NAMES)
	@FUZZ_PROFDATA=$(FUZZ_PROFDATA) FUZZ_LLVM_COV=$(FUZZ_LLVM_COV) \
		FUZZ_RING_COV_MIN=$(FUZZ_RING_COV_MIN) fuzz/run-fuzz cov $(FUZZ_DIR) $(FUZZ_COV_MIN) $(FUZZ_NAMES)

fuzz-merge: $(FUZZ_BINS)
	@fuzz/run-fuzz merge $(FUZZ_DIR) $(FUZZ_NAMES)

fuzz-cov: $(FUZZ_COV_BINS)
	@FUZZ_PROFDATA=$(FUZZ_PROFDATA) FUZZ_LLVM_COV=$(FUZZ_LLVM_COV) \
		FUZZ_RING_COV_MIN=$(FUZZ_RING_COV_MIN) fuzz/run-fuzz cov $(FUZZ_DIR) $(FUZZ_COV_MIN) $(FUZZ_NAMES)

fuzz-seeds: $(FUZZ_RING_SEED)
	$(FUZZ_RING_SEED) fuzz/corpus/ring

-include $(wildcard $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/cov/obj/*/*.d $(BUILD)/obj/fuzz/*.d)
