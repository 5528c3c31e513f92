# The nomoat dispatcher runs the tools and lists them; every tool answers --help in the same
# style (exit 0, "usage: nomoat-TOOL" first) and refuses unknown options.
. "$NOMOAT_ROOT/tests/lib.sh"
check "nomoat --help lists the tools" sh -c "'$BIN/nomoat' --help | grep -q 'pack'"
check "nomoat --version" sh -c "'$BIN/nomoat' --version | grep -q '^nomoat [0-9]'"
check "nomoat pack --help runs nomoat-pack" sh -c "'$BIN/nomoat' pack --help | grep -q 'nomoat-pack'"
check_status "unknown tool" 2 "$BIN/nomoat" frobnicate
for tool in convert quantize verify inspect pack merge; do
    check "nomoat-$tool --help" sh -c "'$BIN/nomoat-$tool' --help | head -n 1 | grep -q '^usage: nomoat-$tool'"
    "$BIN/nomoat-$tool" --no-such-option >/dev/null 2>&1; rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ]; then pass "nomoat-$tool refuses an unknown option (exit $rc)"; else fail "nomoat-$tool unknown option: exit $rc"; fi
done
finish
