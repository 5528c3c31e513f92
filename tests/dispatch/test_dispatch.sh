# The nomoat dispatcher runs the tools and lists them.
. "$NOMOAT_ROOT/tests/lib.sh"
check "nomoat --help lists the tools" sh -c "'$BIN/nomoat' --help | grep -q 'pack'"
check "nomoat --version" sh -c "'$BIN/nomoat' --version | grep -q '^nomoat [0-9]'"
check "nomoat pack --help runs nomoat-pack" sh -c "'$BIN/nomoat' pack --help | grep -q 'nomoat-pack'"
check_status "unknown tool" 2 "$BIN/nomoat" frobnicate
finish
