#!/usr/bin/env bash
# Runs every Strata test. The independent judges the tests rely on (skopeo,
# umoci, runc, podman, Debian's docker-registry, faketime, and curl and openssl
# for the CA test, tests/it/ca_certificates.rs; ssh and ssh-keygen from
# openssh-client for the SSH test, tests/it/ssh.rs; qemu-user-static, whose
# qemu-aarch64-static runs arm64 images' own programs, tests/it/arm64_real.rs)
# are installed with
# apt when missing (needs root); with STRATA_REQUIRE_TOOLS=1 a test that
# cannot find its tool fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
for pkg in skopeo umoci runc podman docker-registry faketime curl openssl; do
  have "$pkg" || missing+=("$pkg")
done
have ssh && have ssh-keygen || missing+=(openssh-client)
have qemu-aarch64-static || missing+=(qemu-user-static)
have aarch64-linux-gnu-gcc || missing+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc_nonshared.a ] || missing+=(libc6-dev-arm64-cross)
# The wheel installer is compared with pip (tests/it/wheels.rs).
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing tools: ${missing[*]} (run as root to install them with apt)" >&2
  fi
fi

# uv resolves `requirements:` at lock time; tests/it/hostile.rs checks that it is
# never allowed to build a source distribution. Installed into target/, not
# the system, when it is not on PATH.
if [ -z "${STRATA_UV:-}" ] && ! command -v uv >/dev/null 2>&1; then
  if [ ! -x target/uv/bin/uv ]; then
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --target target/uv uv==0.13.8 >/dev/null 2>&1 \
      || echo "note: could not install uv with pip" >&2
  fi
  if [ -x target/uv/bin/uv ]; then export STRATA_UV="$PWD/target/uv/bin/uv"; fi
fi

# The signing tests (registry-tests/tests/sign.rs) are judged by a skopeo
# with sigstore support, which Debian 12's is built without: Debian 13's is
# unpacked into target/skopeo-sigstore (the system skopeo is not replaced).
if [ -z "${STRATA_SKOPEO_SIGSTORE:-}" ]; then
  if sk=$(bash scripts/install-skopeo-sigstore.sh); then
    export STRATA_SKOPEO_SIGSTORE="$sk"
  else
    echo "note: could not install a sigstore-capable skopeo" >&2
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; Strata needs a Rust toolchain (1.89 or newer)" >&2
  exit 1
fi

# The Rust standard library for aarch64, to rebuild the linux/arm64
# strata-verify (tests/it/verifier_dist.rs): rustup's rust-std component from
# static.rust-lang.org (152 MB unpacked; 2.6 s on the 2-core VM).
if command -v rustup >/dev/null 2>&1 \
  && [ ! -d "$(rustc --print target-libdir --target aarch64-unknown-linux-gnu 2>/dev/null)" ]; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 \
    || echo "note: could not add the aarch64-unknown-linux-gnu target with rustup" >&2
fi

export STRATA_REQUIRE_TOOLS="${STRATA_REQUIRE_TOOLS:-1}"
# The tests that build and run real Debian images (python-base, ssh-base:
# tests/it/debs_real.rs, tests/it/ssh.rs) download their pinned .debs (about
# 60 MB, never the PyTorch stack). STRATA_NET_TESTS=0 skips them offline; a
# pinned .deb that the archive has since dropped skips them with a note.
export STRATA_NET_TESTS="${STRATA_NET_TESTS:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --workspace --locked "$@"

# Lints, when the toolchain has them (STRATA_LINT=0 skips). verifier/ keeps
# rustfmt's defaults (verifier/rustfmt.toml): reformatting it would move panic
# locations, which are part of the strata-verify bytes the flagship lock pins.
if [ "${STRATA_LINT:-1}" = 1 ]; then
  if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
  else
    echo "note: rustfmt is not installed; format check skipped" >&2
  fi
  if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
  else
    echo "note: clippy is not installed; lint check skipped" >&2
  fi
fi
