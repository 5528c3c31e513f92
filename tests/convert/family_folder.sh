# Sourced by the model-family tests (after tests/lib.sh and node_setup of the tokenizer package):
#   family_folder DIR NAME PACKAGE   builds the Hugging Face folder of the trained test model
#                                    tests/data/NAME in DIR: its config.json (and
#                                    generation_config.json and tokenizer_config.json when it has
#                                    them), model.safetensors unpacked by nomoat-pack, and the npm
#                                    PACKAGE's tokenizer.json and tokenizer_config.json, or, when
#                                    PACKAGE is a SentencePiece model file (*.model), that file as
#                                    tokenizer.model; non-zero when a step fails
#   family_folder_spm DIR NAME [TOKENIZER.model]   the same for a family tested with a SentencePiece
#                                    vocabulary: the tokenizer files kept in tests/data/NAME
#                                    (tokenizer_config.json, added_tokens.json when there is one) and
#                                    the given tokenizer.model (default: the fixtures' real Llama 2 one)
family_folder() {
    mkdir -p "$1" &&
    cp "$DATA/$2/config.json" "$1/" &&
    for f in generation_config.json tokenizer_config.json; do
        [ ! -f "$DATA/$2/$f" ] || cp "$DATA/$2/$f" "$1/" || return 1
    done &&
    case $3 in
    *.model) cp "$3" "$1/tokenizer.model" ;;
    *) cp "$NODE_PATH/$3/models/tokenizer.json" "$NODE_PATH/$3/models/tokenizer_config.json" "$1/" ;;
    esac &&
    "$BIN/nomoat-pack" -d -q "$DATA/$2/model.safetensors.nmz" -o "$1/model.safetensors"
}
family_folder_spm() {
    mkdir -p "$1" &&
    cp "$DATA/$2/config.json" "$DATA/$2/tokenizer_config.json" "$1/" &&
    { [ ! -f "$DATA/$2/added_tokens.json" ] || cp "$DATA/$2/added_tokens.json" "$1/"; } &&
    cp "${3:-$FIXTURES/tokenizer/llama2-tokenizer.model}" "$1/tokenizer.model" &&
    "$BIN/nomoat-pack" -d -q "$DATA/$2/model.safetensors.nmz" -o "$1/model.safetensors"
}
