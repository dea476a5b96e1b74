#!/usr/bin/env bash
# Builds everything and runs every test; prints one "N passed, N failed" line at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
# BLAKE3's C implementation, for the tests that compare it with the managed one (they skip, saying why, without it).
scripts/blake3.sh >/dev/null || echo "BLAKE3's C library not built; its tests will skip" >&2
log=$(mktemp)
dotnet test FileProxy.sln -c Release --nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
rm -f "$log"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
