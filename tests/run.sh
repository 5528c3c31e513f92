#!/bin/sh
# Runs every test program: the cmocka binaries built from tests/<dir>/test_*.c and the shell
# tests tests/<dir>/test_*.sh. Each program's output goes to $BUILD/test-logs/; failing ones
# are printed. Ends with one line "N passed, N failed, N skipped" (test cases, not programs).
#   T=pattern   only programs whose path contains pattern
#   V=1         print every program's output
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
export NOMOAT_ROOT="$ROOT" NOMOAT_BUILD="$ROOT/$BUILD" NOMOAT_BIN="$ROOT/$BUILD"
export NOMOAT_FIXTURES="${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=99}"
LOGS="$BUILD/test-logs"
rm -rf "$LOGS"; mkdir -p "$LOGS"
TIMEOUT=${TEST_TIMEOUT:-900}

passed=0; failed=0; skipped=0; failed_programs=""
start=$(date +%s)

run_one() {
    prog=$1; name=$2
    log="$LOGS/$(echo "$name" | tr '/' '_').log"
    t0=$(date +%s)
    case "$prog" in
        *.sh) timeout "$TIMEOUT" sh "$prog" >"$log" 2>&1 ;;
        *) timeout "$TIMEOUT" "$prog" >"$log" 2>&1 ;;
    esac
    rc=$?
    t1=$(date +%s)
    # cmocka: "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)"; shell: "# tally: P passed, F failed, S skipped"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    s=$(grep -c '^\[  SKIPPED \]' "$log")
    if grep -q '^# tally:' "$log"; then
        p=$((p + $(sed -n 's/^# tally: \([0-9]*\) passed.*/\1/p' "$log" | tail -1)))
        f=$((f + $(sed -n 's/^# tally: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log" | tail -1)))
        s=$((s + $(sed -n 's/^# tally: .* \([0-9]*\) skipped.*/\1/p' "$log" | tail -1)))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1  # crashed, sanitizer report or timeout without a reported failure
        [ "$rc" -eq 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    status=ok; [ "$f" -ne 0 ] && status=FAIL
    printf '%-4s %-44s %4d passed %3d failed %3d skipped  %4ds\n' "$status" "$name" "$p" "$f" "$s" $((t1 - t0))
    grep -h '^SKIPPED' "$log" | sed 's/^/     /'
    if [ "$f" -ne 0 ] || [ -n "$V" ]; then
        tail -n 60 "$log" | sed 's/^/     | /'
    fi
    [ "$f" -ne 0 ] && failed_programs="$failed_programs $name"
}

for bin in $(ls "$BUILD"/tests/*/test_* 2>/dev/null | grep -v '\.d$' | sort); do
    [ -x "$bin" ] || continue
    name=${bin#"$BUILD"/tests/}
    [ -n "$T" ] && case "$name" in *"$T"*) ;; *) continue ;; esac
    run_one "$bin" "$name"
done
for sh in $(ls tests/*/test_*.sh 2>/dev/null | sort); do
    name=${sh#tests/}
    [ -n "$T" ] && case "$name" in *"$T"*) ;; *) continue ;; esac
    run_one "$sh" "$name"
done

echo "test time: $(( $(date +%s) - start ))s${failed_programs:+; failing:$failed_programs}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
