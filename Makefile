# nomoat build. One static library from common/, formats/, kernels/ and arch/, one binary per
# tool directory, one test binary per tests/<dir>/test_*.c. New files are picked up by wildcard:
# adding a module or a test never needs an edit here.
#
#   make                 build everything into $(BUILD) (default build/)
#   make test            build and run every test; ends with "N passed, N failed"
#   make test SAN=1      the same under AddressSanitizer + UBSan (build-san/)
#   make demo            convert -> quantize -> verify on the bundled model
#   make install PREFIX=/usr/local
#   make fuzz-<name>     run tests/fuzz/fuzz_<name>.c under libFuzzer (clang)

# Every goal but `clean` first runs the install step ($(DEPS_SCRIPT)), then the build itself in a
# second make: pkg-config must be asked for the libraries' flags after they are installed, and a
# make reads its variables once, when it starts. (A single make linked the first build on a fresh
# machine without -lcjson -lxxhash -lzstd.)
DEPS_SCRIPT ?= scripts/install-deps.sh
GOALS := $(or $(MAKECMDGOALS),all)

ONLY_CLEAN := $(if $(filter-out clean,$(GOALS)),,1)

ifeq ($(NOMOAT_DEPS_DONE)$(ONLY_CLEAN),)
# The first goal installs and runs the build of all goals; the others wait for it (so `make -j2 a b`
# does not start two builds in one folder).
.PHONY: $(GOALS)
$(firstword $(GOALS)):
	@sh $(DEPS_SCRIPT)
	@$(MAKE) --no-print-directory NOMOAT_DEPS_DONE=1 $(GOALS)
$(filter-out $(firstword $(GOALS)),$(GOALS)): $(firstword $(GOALS))
	@:
else
CC      ?= cc
ifeq ($(CC),cc)
CC      := gcc
endif
PREFIX  ?= /usr/local
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)

ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     := -O1
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2
endif

PKGS     := libzstd libcjson libxxhash
ifneq ($(ONLY_CLEAN),1)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
$(error pkg-config knows none of $(PKGS) after $(DEPS_SCRIPT) ran: is pkg-config installed, and are libzstd-dev, libcjson-dev and libxxhash-dev?)
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
endif

# -ffp-contract=off: the quantizers must round exactly as llama.cpp's reference does.
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -ffp-contract=off -pthread \
           -I. $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

# SIMD siblings: *_avx2.c and *_avx512.c only on x86-64, *_neon.c only on arm64 (chosen at run time).
LIB_DIRS    := common formats kernels arch
LIB_SRC_ALL := $(wildcard $(addsuffix /*.c,$(LIB_DIRS)))
ifeq ($(ARCH),x86_64)
OTHER_ARCH_SRC := %_neon.c
else ifeq ($(ARCH),aarch64)
OTHER_ARCH_SRC := %_avx2.c %_avx512.c
else
OTHER_ARCH_SRC := %_avx2.c %_avx512.c %_neon.c
endif
LIB_SRC := $(filter-out $(OTHER_ARCH_SRC),$(LIB_SRC_ALL))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libnomoat.a

TOOL_DIRS := convert quantize verify inspect pack merge dispatch
# Private modules a tool borrows from another tool (merge: quantize's per-tensor type choice).
TOOL_LIBS_merge := quantize
# (quantize: verify's forward pass for --calibration.)
TOOL_LIBS_quantize := verify
TOOL_NAME  = $(if $(filter dispatch,$1),nomoat,nomoat-$1)
TOOLS     := $(foreach d,$(TOOL_DIRS),$(if $(wildcard $(d)/main.c),$(BUILD)/$(call TOOL_NAME,$(d))))

# Test binaries: tests/<dir>/test_*.c, linked with the tool's private modules when <dir> is a tool.
TEST_SRC  := $(wildcard tests/*/test_*.c)
TEST_BIN  := $(TEST_SRC:%.c=$(BUILD)/%)

# Fault-injection shims for the tests (LD_PRELOAD; never sanitized, never installed).
FAULT_LIBS := $(BUILD)/libfault.so $(BUILD)/libfault-nomalloc.so

.PHONY: all test demo install clean fuzz bench man test-arm64
all: $(LIB) $(TOOLS) $(TEST_BIN) $(FAULT_LIBS)

$(BUILD)/libfault.so: tests/fault/libfault.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl
$(BUILD)/libfault-nomalloc.so: tests/fault/libfault.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -Wall -Wextra -Werror -fPIC -shared -DFAULT_NO_MALLOC -o $@ $< -ldl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -mavx2 -mfma -mf16c -MMD -MP -c $< -o $@

AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Each tool: main.o + the directory's private modules (kept in lib<dir>.a so tests can link them).
define TOOL_RULES
$(BUILD)/$(1)/lib$(1).a: $$(patsubst %.c,$(BUILD)/%.o,$$(filter-out $(1)/main.c $(OTHER_ARCH_SRC),$$(wildcard $(1)/*.c))) | $(LIB)
	@mkdir -p $$(dir $$@); rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/$(call TOOL_NAME,$(1)): $(BUILD)/$(1)/main.o $(BUILD)/$(1)/lib$(1).a $(foreach l,$(TOOL_LIBS_$(1)),$(BUILD)/$(l)/lib$(l).a) $(LIB)
	$(CC) $(LDFLAGS) -o $$@ $$^ $(LDLIBS)
endef
$(foreach d,$(TOOL_DIRS),$(eval $(call TOOL_RULES,$(d))))

$(BUILD)/tests/%: tests/%.c $(LIB) $(foreach d,$(TOOL_DIRS),$(BUILD)/$(d)/lib$(d).a)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< \
	  $(if $(filter $(TOOL_DIRS),$(firstword $(subst /, ,$*))),$(BUILD)/$(firstword $(subst /, ,$*))/lib$(firstword $(subst /, ,$*)).a) \
	  $(foreach l,$(TOOL_LIBS_$(firstword $(subst /, ,$*))),$(BUILD)/$(l)/lib$(l).a) \
	  $(LIB) $(LDFLAGS) $(LDLIBS) $(CMOCKA_LIBS)

test: all
	@BUILD=$(BUILD) SAN=$(SAN) sh tests/run.sh

demo: all
	@BUILD=$(BUILD) sh scripts/demo.sh

bench: all
	@BUILD=$(BUILD) sh scripts/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/

# man/*.1 are generated from the tools' --help text (committed, so install needs no help2man).
man: all
	sh scripts/make-man.sh $(BUILD)

# libFuzzer targets: make fuzz-gguf runs tests/fuzz/fuzz_gguf.c (FUZZ_TIME seconds, default 60).
FUZZ_TIME ?= 60
FUZZ_DEPS ?= libclang-rt-14-dev
FUZZ_CFLAGS := -std=c11 -O1 -g -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -ffp-contract=off -pthread -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
# The library and nomoat-verify's modules (fuzz_model: its loader and forward pass) are compiled
# once into build-fuzz/libnomoat.a (objects kept, so the next target only links); each target links
# it with its fuzz_<name>.c.
FUZZ_LIB_OBJ := $(patsubst %.c,build-fuzz/obj/%.o,$(filter-out %_neon.c,$(LIB_SRC_ALL)) \
                  $(filter-out verify/main.c,$(wildcard verify/*.c)))
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -mavx2 -mfma -mf16c -MMD -MP -c -o $@ $<
build-fuzz/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(AVX512_FLAGS) -MMD -MP -c -o $@ $<
build-fuzz/libnomoat.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
fuzz-%: tests/fuzz/fuzz_%.c
	@NOMOAT_EXTRA_DEPS="$(FUZZ_DEPS)" sh $(DEPS_SCRIPT)
	@mkdir -p build-fuzz/corpus/$*
	@$(MAKE) --no-print-directory build-fuzz/libnomoat.a
	clang $(FUZZ_CFLAGS) -mavx2 -mfma -mf16c -o build-fuzz/fuzz_$* $< build-fuzz/libnomoat.a $(PKG_LIBS) -lm
	build-fuzz/fuzz_$* -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 $(if $(FUZZ_SEED),-seed=$(FUZZ_SEED)) build-fuzz/corpus/$* \
	  $(wildcard tests/fuzz/seeds/$*) $(wildcard tests/fuzz/regress/$*)

fuzz:
	@for f in tests/fuzz/fuzz_*.c; do n=$${f#tests/fuzz/fuzz_}; $(MAKE) fuzz-$${n%.c} || exit 1; done

# arm64 cross test (outside `make test`): builds the quantization kernels for arm64 with Debian's
# cross compiler and runs the NEON-versus-reference comparison under qemu-user. Optional packages:
# NOMOAT_WITH_ARM64=1 sh scripts/install-deps.sh. ARM64_ARGS = legacy blocks, K super-blocks.
ARM64_CC   ?= aarch64-linux-gnu-gcc
ARM64_QEMU ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
ARM64_ARGS ?= 1000000 20000
ARM64_SRC  := formats/quants.c formats/quants_k.c formats/quants_k_low.c formats/quants_iq4.c formats/quants_tq.c formats/quants_iq1.c formats/quants_iq2.c formats/quants_iq3.c formats/quants_iq_lattice.c formats/quants_neon.c formats/tensor.c formats/tensor_neon.c common/error.c common/cpu.c
test-arm64:
	@NOMOAT_WITH_ARM64=1 sh $(DEPS_SCRIPT)
	@mkdir -p build-arm64
	$(ARM64_CC) -O2 -g -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -D_GNU_SOURCE \
	  -ffp-contract=off -pthread -I. -o build-arm64/quants_arm64 tests/arm64/quants_arm64.c $(ARM64_SRC) -lm
	$(ARM64_QEMU) build-arm64/quants_arm64 tests/data/quant-vectors $(ARM64_ARGS)

clean:
	rm -rf build build-san build-fuzz build-arm64

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include $(shell find build-fuzz/obj -name '*.d' 2>/dev/null)

endif
