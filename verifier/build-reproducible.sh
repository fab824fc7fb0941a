#!/bin/sh
# Builds the strata-verify binary that `strata build` puts into images and
# prints its sha256. The bytes depend only on the sources, Cargo.lock and the
# toolchain (rustc 1.95.0 and the C toolchain that links it: Debian
# bookworm's gcc 12 / glibc 2.36, for aarch64 its cross compiler
# gcc-aarch64-linux-gnu with libc6-dev-arm64-cross), not on the checkout
# path, the user, the clock or the cargo home: see docs/verifier.md.
#
# usage: verifier/build-reproducible.sh [TARGET]   (prints "SHA256  PATH")
#        TARGET: x86_64-unknown-linux-gnu (default) or aarch64-unknown-linux-gnu
# env:   CARGO_TARGET_DIR to build elsewhere (default: target/ in the checkout)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=${1:-x86_64-unknown-linux-gnu}
case "$triple" in
  x86_64-unknown-linux-gnu) ;;
  aarch64-unknown-linux-gnu)
    # Linked by Debian's cross gcc (the host's `cc` links only x86-64).
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}" ;;
  *)
    echo "error: strata-verify is built for x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu, not $triple" >&2
    exit 2 ;;
esac

# Paths that would otherwise end up in panic messages: the checkout, the
# cargo registry, and the target directory (it may live outside the checkout).
# An explicit --target keeps these flags away from the host artifacts other
# builds in the same target directory share.
export RUSTFLAGS="--remap-path-prefix=$target_dir=/target --remap-path-prefix=$root=/strata --remap-path-prefix=$cargo_home=/cargo"
export CARGO_TARGET_DIR="$target_dir"
export SOURCE_DATE_EPOCH=1700000000
cargo build --quiet --locked --profile verifier -p strata-verify --target "$triple"
bin="$target_dir/$triple/verifier/strata-verify"
sha256sum "$bin"
