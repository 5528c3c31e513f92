# Shared helpers for shell tests (sourced). Each check prints "ok - NAME" or "not ok - NAME";
# finish() prints the "# tally:" line tests/run.sh counts and exits non-zero on failure.
#   $BIN        the build folder holding the tools (nomoat-convert, ...)
#   $FIXTURES   ../shared/fixtures when it exists (use need_fixtures to skip otherwise)
#   $DATA       tests/data
#   $SCRATCH    a fresh temporary folder, removed at exit
BIN=${NOMOAT_BIN:-build}
ROOT=${NOMOAT_ROOT:-$(pwd)}
DATA="$ROOT/tests/data"
FIXTURES=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/nomoat-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
_passed=0; _failed=0; _skipped=0

pass() { _passed=$((_passed + 1)); echo "ok - $1"; }
fail() { _failed=$((_failed + 1)); echo "not ok - $1"; [ -n "$2" ] && echo "    $2"; return 0; }
skip() { _skipped=$((_skipped + 1)); echo "SKIPPED: $1"; }

# check NAME COMMAND...: passes when the command exits 0
check() {
    _name=$1; shift
    if "$@" >"$SCRATCH/.out" 2>&1; then pass "$_name"; else fail "$_name"; sed 's/^/    | /' "$SCRATCH/.out" | tail -20; fi
}
# check_fails NAME EXPECTED_STATUS COMMAND...: passes when the command exits with that status
check_status() {
    _name=$1; _want=$2; shift 2
    "$@" >"$SCRATCH/.out" 2>&1; _rc=$?
    if [ "$_rc" -eq "$_want" ]; then pass "$_name"; else fail "$_name" "exit $_rc, expected $_want"; sed 's/^/    | /' "$SCRATCH/.out" | tail -20; fi
}
# Files under ../shared/fixtures: returns 1 (and records a skip) when they are not there.
need_fixtures() {
    if [ -d "$FIXTURES" ]; then return 0; fi
    skip "$1 (no ../shared/fixtures on this machine)"; return 1
}
finish() {
    echo "# tally: $_passed passed, $_failed failed, $_skipped skipped"
    [ "$_failed" -eq 0 ]
    exit $?
}
