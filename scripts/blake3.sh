#!/usr/bin/env bash
# Builds BLAKE3's reference C implementation (the BLAKE3 team's, with its SSE2, SSE4.1, AVX2 and AVX-512 assembly,
# chosen at run time by cpuid) into OUTDIR/libblake3.a (linked into the native executables by scripts/publish.sh)
# and OUTDIR/libblake3.so (loaded by the tests). It hashes about 6 GB/s a core here against 3.3-4 GB/s for the
# managed Blake3 package, and every miss, fill and download hashes each byte.
# Usage: scripts/blake3.sh [OUTDIR]    (default artifacts/blake3; prints OUTDIR)
# The sources come from Debian's librust-blake3-dev (the Rust crate, whose c/ directory is that implementation),
# unpacked into OUTDIR without installing it. Exits with status 3, saying why, when they or a C compiler cannot be
# had; the programs then hash with the managed package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/blake3}
mkdir -p "$out"
out=$(cd "$out" && pwd)

cc=$(command -v cc || command -v clang || command -v gcc || true)
if [[ -z $cc ]]; then
  echo "blake3: no C compiler (cc, clang or gcc)" >&2
  exit 3
fi

find_sources() { { compgen -G "$1/usr/share/cargo/registry/blake3-*/c/blake3.h" || true; } | head -1 | xargs -r dirname; }
src=$(find_sources "")
[[ -n $src ]] || src=$(find_sources "$out/deb")
if [[ -z $src ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  download() { (cd "$tmp" && apt-get download -qq librust-blake3-dev >/dev/null 2>&1); }
  if ! download && ((EUID == 0)) && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null 2>&1 || true
    download || true
  fi
  if ! compgen -G "$tmp/librust-blake3-dev_*.deb" >/dev/null; then
    echo "blake3: cannot fetch Debian's librust-blake3-dev (apt-get download librust-blake3-dev)" >&2
    exit 3
  fi
  rm -rf "$out/deb"
  dpkg-deb -x "$tmp"/librust-blake3-dev_*.deb "$out/deb"
  src=$(find_sources "$out/deb")
fi

# Rebuild only when the sources are newer than the libraries.
if [[ -f $out/libblake3.a && -f $out/libblake3.so && -z $(find "$src" -newer "$out/libblake3.a" -print -quit) ]]; then
  echo "$out"
  exit 0
fi
objects=()
for f in blake3.c blake3_dispatch.c blake3_portable.c \
  blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S; do
  "$cc" -O3 -fPIC -c "$src/$f" -o "$out/${f%.*}.o"
  objects+=("$out/${f%.*}.o")
done
rm -f "$out/libblake3.a"
ar rcs "$out/libblake3.a" "${objects[@]}"
"$cc" -shared -o "$out/libblake3.so" "${objects[@]}"
cp "$src/blake3.h" "$out/"
echo "$out"
