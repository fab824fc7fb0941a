#!/bin/sh
# The strata-verify binaries built into strata (linux/amd64 and linux/arm64):
# rebuild them, record them, or check them.
#
#   verifier/dist/update.sh           rebuild both with verifier/build-reproducible.sh (in a
#                                     fresh target directory), copy them here and rewrite
#                                     manifest.toml (their sha256, the toolchain, the
#                                     linkers, the digests of the sources they were built from)
#   verifier/dist/update.sh --check   rebuild both the same way and compare the bytes with
#                                     the committed binaries (what an auditor runs)
#
# The committed binaries must come from the pinned toolchain: rustc 1.95.0 with
# the x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu targets
# (`rustup target add aarch64-unknown-linux-gnu`), linked by Debian bookworm's
# gcc 12 (`cc`) and its cross gcc 12 (apt: gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross). The rebuild refuses another rustc unless
# STRATA_ANY_TOOLCHAIN=1. After an update, re-lock the specs with a `gpu:`
# section (`strata lock specs/pytorch-cuda.yaml`): they pin the verifier's sha256.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dist=verifier/dist
triples="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"
pinned="rustc 1.95.0"
have=$(rustc -V)
case "$have" in
  "$pinned "*) ;;
  *)
    if [ "${STRATA_ANY_TOOLCHAIN:-0}" != 1 ]; then
      echo "error: the built-in strata-verify is built with $pinned; this machine has $have" >&2
      echo "hint: install it (rustup toolchain install 1.95.0; RUSTUP_TOOLCHAIN=1.95.0 $0), or set STRATA_ANY_TOOLCHAIN=1 to build anyway (the bytes will differ)" >&2
      exit 2
    fi ;;
esac
if [ ! -d "$(rustc --print target-libdir --target aarch64-unknown-linux-gnu)" ]; then
  echo "error: the Rust standard library for aarch64-unknown-linux-gnu is not installed" >&2
  echo "hint: rustup target add aarch64-unknown-linux-gnu" >&2
  exit 2
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  echo "error: aarch64-linux-gnu-gcc (the linker of the linux/arm64 strata-verify) is not installed" >&2
  echo "hint: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross (Debian bookworm)" >&2
  exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-verify-dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for triple in $triples; do
  CARGO_TARGET_DIR="$tmp/target" verifier/build-reproducible.sh "$triple" >/dev/null
done
if [ "${1:-}" = --check ]; then
  status=0
  for triple in $triples; do
    bin="$tmp/target/$triple/verifier/strata-verify"
    new=$(sha256sum "$bin" | cut -d' ' -f1)
    old=$(sha256sum "$dist/$triple/strata-verify" | cut -d' ' -f1)
    if cmp -s "$bin" "$dist/$triple/strata-verify"; then
      echo "identical: rebuilt strata-verify is sha256:$new, as committed in $dist/$triple/strata-verify"
    else
      echo "different: $dist/$triple/strata-verify: rebuilt sha256:$new, committed sha256:$old" >&2
      status=1
    fi
  done
  exit $status
fi
for triple in $triples; do
  mkdir -p "$dist/$triple"
  cp "$tmp/target/$triple/verifier/strata-verify" "$dist/$triple/strata-verify.tmp"
done
for triple in $triples; do
  old=$(sha256sum "$dist/$triple/strata-verify" 2>/dev/null | cut -d' ' -f1 || true)
  mv "$dist/$triple/strata-verify.tmp" "$dist/$triple/strata-verify"
  new=$(sha256sum "$dist/$triple/strata-verify" | cut -d' ' -f1)
  echo "sha256:$new  $dist/$triple/strata-verify (was sha256:${old:-none})"
done
STRATA_UPDATE_VERIFIER_DIST=1 cargo test --quiet --locked -p strata --test it -- verifier_dist::dist_manifest_matches_the_verifier_sources >/dev/null
