#!/bin/sh
# The strata-verify built into strata: rebuild it, record it, or check it.
#
#   verifier/dist/update.sh           rebuild with verifier/build-reproducible.sh (in a
#                                     fresh target directory), copy the binary here and
#                                     rewrite manifest.toml (its sha256, the toolchain,
#                                     the digests of the sources it was built from)
#   verifier/dist/update.sh --check   rebuild the same way and compare the bytes with
#                                     the committed binary (what an auditor runs)
#
# The committed binary must come from the pinned toolchain (rustc 1.95.0,
# x86_64-unknown-linux-gnu, linked by Debian bookworm's gcc 12): the rebuild
# refuses another one unless STRATA_ANY_TOOLCHAIN=1. After an update, re-lock
# the specs with a `gpu:` section (`strata lock specs/pytorch-cuda.yaml`):
# they pin the verifier's sha256.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dist=verifier/dist
triple=x86_64-unknown-linux-gnu
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
tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-verify-dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CARGO_TARGET_DIR="$tmp/target" verifier/build-reproducible.sh >/dev/null
bin="$tmp/target/$triple/verifier/strata-verify"
new=$(sha256sum "$bin" | cut -d' ' -f1)
old=$(sha256sum "$dist/$triple/strata-verify" | cut -d' ' -f1)
if [ "${1:-}" = --check ]; then
  if cmp -s "$bin" "$dist/$triple/strata-verify"; then
    echo "identical: rebuilt strata-verify is sha256:$new, as committed in $dist/$triple/strata-verify"
    exit 0
  fi
  echo "different: rebuilt sha256:$new, committed sha256:$old" >&2
  exit 1
fi
mkdir -p "$dist/$triple"
cp "$bin" "$dist/$triple/strata-verify.tmp"
mv "$dist/$triple/strata-verify.tmp" "$dist/$triple/strata-verify"
STRATA_UPDATE_VERIFIER_DIST=1 cargo test --quiet --locked -p strata --test it -- verifier_dist::dist_manifest_matches_the_verifier_sources >/dev/null
echo "sha256:$new  $dist/$triple/strata-verify (was sha256:$old)"
