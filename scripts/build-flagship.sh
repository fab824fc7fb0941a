#!/bin/sh
# The main job: build the flagship image (PyTorch 2.9 / CUDA 12.8 / cuDNN 9.10 /
# NCCL 2.27 / JupyterLab on Debian bookworm, Python 3.11) into an OCI layout.
#   scripts/build-flagship.sh [OUTPUT]        default OUTPUT: oci:build/pytorch-cuda
# Builds strata (release) and strata-verify (reproducibly: its sha256 is pinned
# in specs/pytorch-cuda.lock), then the image; ~4 GB of pinned wheels and .debs
# are downloaded on the first run. The manifest digest is the last line of stdout.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-oci:build/pytorch-cuda}
cargo build --quiet --release --locked -p strata
verifier=$(verifier/build-reproducible.sh | awk '{print $2}')
exec target/release/strata build specs/pytorch-cuda.yaml --context . -o "$out" --verifier "$verifier"
