#!/bin/sh
# Generates man/nomoat*.1 from the tools' own --help text (one source: what --help prints is
# what the man page says), with help2man (Debian package help2man).
#   usage: scripts/make-man.sh [BUILD_DIR]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/${1:-build}"
NOMOAT_EXTRA_DEPS=help2man sh "$ROOT/scripts/install-deps.sh"
VERSION=$(sed -n 's/^#define NOMOAT_VERSION "\(.*\)"/\1/p' "$ROOT/common/version.h")
mkdir -p "$ROOT/man"
page() { # tool, one-line description
    help2man --no-info --no-discard-stderr --version-string="$VERSION" --name="$2" \
        --source="nomoat $VERSION" --manual="nomoat" -o "$ROOT/man/$1.1" "$BIN/$1"
    echo "man/$1.1"
}
page nomoat "run the nomoat tools (convert, quantize, verify, inspect, pack, merge)"
page nomoat-convert "convert Hugging Face and Meta Llama checkpoints to GGUF"
page nomoat-quantize "quantize GGUF models exactly as llama-quantize does"
page nomoat-verify "tokenize, perplexity, KL-divergence, imatrix and quality gates for GGUF models"
page nomoat-inspect "list metadata and tensors of GGUF, safetensors and PyTorch files"
page nomoat-pack "lossless, checksummed, seekable zstd packing of model files"
page nomoat-merge "merge LoRA adapters or delta weights into a GGUF model, as llama-export-lora does"
