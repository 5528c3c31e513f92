#!/bin/sh
# Runs a command and prints its peak anonymous memory (RssAnon, sampled every 20 ms; mapped
# file pages are not counted) in MB on the last line of stderr as "peak-anon-mb N".
#   usage: scripts/peak-anon.sh COMMAND [ARGS...]
"$@" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
    sleep 0.02
done
wait "$pid"
rc=$?
echo "peak-anon-mb $((peak / 1024))" >&2
exit $rc
