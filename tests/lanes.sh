#!/bin/sh
# The whole suite in two lanes side by side (`make test`): the tests that load a core on their own (a real
# Chromium or Firefox, a real Whisper model) or build network topologies (browsers refuse to start beside veth
# links) one at a time in one lane, the light ones in the other. Two heavy tests at once on a 2-core machine
# would time each other's real-time media out. Usage: tests/lanes.sh PYTHON [pytest arguments...]
set -u
python=$1
shift
heavy="browser or model or topology"
log=$(mktemp)
"$python" -m pytest -p no:cacheprovider -m "not ($heavy)" "$@" >"$log" 2>&1 &
light=$!
"$python" -m pytest -p no:cacheprovider -m "$heavy" "$@"
heavy_status=$?
wait "$light"
light_status=$?
echo "======================== the light lane, run beside the heavy one ========================"
cat "$log"
rm -f "$log"
# 5: the arguments selected nothing in that lane (e.g. one browser test file)
for status in "$heavy_status" "$light_status"; do
  [ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit 1
done
