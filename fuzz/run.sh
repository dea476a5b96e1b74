#!/usr/bin/env bash
# Fuzzes the frame decoder and the request handler with SharpFuzz and AFL++ for SECONDS (default 600).
#   fuzz/run.sh [SECONDS]             fuzz; findings in fuzz/out/findings (crashes/, hangs/, fuzzer_stats)
#   fuzz/run.sh --replay PATH...      run inputs once each without afl-fuzz (exit 1 if any fails)
# Needs afl++ (Debian: apt-get install afl++) and the .NET SDK; the sharpfuzz tool comes from
# fuzz/.config/dotnet-tools.json. Runs on one core at nice 10. See docs/RELIABILITY.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/out"
bin="$out/bin"

build() {
    # A separate output directory: instrumentation rewrites the assemblies in place, and the normal build's
    # binaries must stay as they are.
    rm -rf "$bin"
    dotnet build "$here/FileProxy.Fuzz/FileProxy.Fuzz.csproj" -c Release -o "$bin" -v q -nologo >/dev/null
    (cd "$here" && dotnet tool restore >/dev/null)
    for assembly in FileProxy.Protocol.dll FileProxy.Server.dll; do
        (cd "$here" && dotnet sharpfuzz "$bin/$assembly" >/dev/null)
    done
}

if [[ "${1:-}" == "--replay" ]]; then
    shift
    dotnet build "$here/FileProxy.Fuzz/FileProxy.Fuzz.csproj" -c Release -o "$out/replay" -v q -nologo >/dev/null
    exec dotnet "$out/replay/FileProxy.Fuzz.dll" --replay "$@"
fi

seconds="${1:-600}"
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 2; }
build
mkdir -p "$out"
findings="$out/findings"
# Each run starts with fresh findings, from the seeds plus the corpus earlier runs grew (so its crash count is its
# own); the previous findings are kept beside it.
inputs="$out/inputs"
rm -rf "$inputs" && mkdir -p "$inputs" && cp "$here"/seeds/* "$inputs"/
if [[ -d "$findings/default/queue" ]]; then
    mkdir -p "$out/corpus" && cp "$findings"/default/queue/id:* "$out/corpus"/ 2>/dev/null || true
    mv "$findings" "$findings.$(date -u +%Y%m%dT%H%M%S)"
fi
[[ -d "$out/corpus" ]] && cp "$out/corpus"/* "$inputs"/ 2>/dev/null || true
export AFL_SKIP_BIN_CHECK=1            # the target is dotnet, instrumented by SharpFuzz, not by afl-cc
export AFL_NO_UI=1                     # status lines on stdout instead of the curses screen
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_SKIP_CPUFREQ=1
export AFL_NO_AFFINITY=1
export DOTNET_TieredPGO=0
echo "fuzzing for $seconds s; findings in $findings"
nice -n 10 afl-fuzz -i "$inputs" -o "$findings" -t 10000 -m none -V "$seconds" \
    -- dotnet "$bin/FileProxy.Fuzz.dll" || true
stats="$findings/default/fuzzer_stats"
if [[ -f "$stats" ]]; then
    grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|stability|bitmap_cvg)' "$stats"
    crashes=$(find "$findings/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    hangs=$(find "$findings/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
    echo "crashes: $crashes, hangs: $hangs"
fi
