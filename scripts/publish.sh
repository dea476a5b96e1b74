#!/usr/bin/env bash
# Publishes the three programs as native (NativeAOT) executables for linux-x64, with names a user types:
#   OUTDIR/fileproxy-server  fileproxy-proxy  fileproxy-client      (and fileproxy-bench with --bench)
# Usage: scripts/publish.sh [--bench] [OUTDIR]    (default OUTDIR: artifacts/native)
# Needs the .NET SDK and a C toolchain for the final link (clang or gcc, and zlib's headers). When they are missing
# it installs clang and zlib1g-dev with apt-get if run as root, and otherwise exits with status 3 and says what to
# install. Publishing again after a change recompiles only what changed (about 15-40 s a program on 2 cores).
# The code is compiled for x86-64-v4 (AVX-512) or v3 (AVX2) when this machine has it, else for v2: copy the executables only
# to machines whose processor is at least the one they were published on.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

bench=0
out=
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    -*) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
out=${out:-artifacts/native}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# NativeAOT compiles to an object file and links it with clang (or gcc) against zlib.
toolchain_missing() {
  local missing=()
  command -v clang >/dev/null || command -v gcc >/dev/null || missing+=(clang)
  [[ -f /usr/include/zlib.h ]] || missing+=(zlib1g-dev)
  echo "${missing[@]}"
}
missing=$(toolchain_missing)
if [[ -n $missing ]]; then
  if ((EUID == 0)) && command -v apt-get >/dev/null; then
    echo "installing $missing (needed to link native executables)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "cannot link native executables: missing $missing (on Debian or Ubuntu: sudo apt-get install clang zlib1g-dev)" >&2
    exit 3
  fi
fi

projects=(Server Proxy Client)
((bench)) && projects+=(Bench)
# One solution of what is published, so that MSBuild builds the shared library once and the programs side by side.
art=$repo/artifacts/publish-native
mkdir -p "$art"
{
  echo "<Solution>"
  for p in "${projects[@]}"; do
    dir=src; [[ $p == Bench ]] && dir=bench
    echo "  <Project Path=\"$repo/$dir/FileProxy.$p/FileProxy.$p.csproj\" />"
  done
  echo "</Solution>"
} >"$art/publish.slnx"
# The executables are compiled for the best of x86-64-v4 (AVX-512), v3 (AVX2) and v2 that this machine has: BLAKE3
# hashes 1.6 GB/s a core with AVX2 and 3.3 GB/s with AVX-512 (16-way), and every hit and miss hashes each byte.
# Directory.Build.targets defaults to v3.
isa=()
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
if has avx512f avx512bw avx512cd avx512dq avx512vl; then
  isa=(-p:IlcInstructionSet=x86-64-v4)
elif ! has avx2; then
  isa=(-p:IlcInstructionSet=x86-64-v2)
fi
# BLAKE3's C implementation (scripts/blake3.sh), linked in when it can be built: about 6 GB/s a core against 3.3 for
# the managed package.
blake3=()
if lib=$(scripts/blake3.sh "$repo/artifacts/blake3"); then
  blake3=(-p:FileProxyBlake3Library="$lib/libblake3.a")
else
  echo "publishing with the managed BLAKE3 (slower hashing)" >&2
fi
if ! dotnet publish "$art/publish.slnx" -c Release -r linux-x64 "${isa[@]}" "${blake3[@]}" --artifacts-path "$art" -v quiet -nologo >"$art/publish.log" 2>&1; then
  grep -E 'error|warning' "$art/publish.log" | sort -u >&2 || cat "$art/publish.log" >&2
  echo "publishing failed; the whole log is in $art/publish.log" >&2
  exit 1
fi
for p in "${projects[@]}"; do
  install -m 755 "$art/publish/FileProxy.$p/release_linux-x64/FileProxy.$p" "$out/fileproxy-${p,,}"
done
echo "$out"
