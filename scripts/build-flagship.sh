#!/bin/sh
# The main job: build the flagship image (PyTorch 2.9 / CUDA 12.8 / cuDNN 9.10 /
# NCCL 2.27 / JupyterLab on Debian bookworm, Python 3.11) into an OCI layout.
#   scripts/build-flagship.sh [OUTPUT]        default OUTPUT: oci:build/pytorch-cuda
# The same as the README's quick start: builds strata (release), then the image.
# The strata-verify the image starts with is built into strata (its sha256 is
# pinned in specs/pytorch-cuda.lock; `strata verifier` shows it). ~4 GB of
# pinned wheels and .debs are downloaded on the first run. The manifest digest
# is the last line of stdout.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-oci:build/pytorch-cuda}
cargo build --quiet --release --locked -p strata
exec target/release/strata build specs/pytorch-cuda.yaml -o "$out"
