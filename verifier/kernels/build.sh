#!/bin/sh
# Rebuilds the PTX that strata-verify embeds, from the .cu files beside it.
# Needs a CUDA toolkit (nvcc + ptxas, 12.0 or newer); run it on a machine
# with one and commit the two .ptx files. The binary itself builds without
# CUDA.
#
# nvcc writes the PTX ISA version of its own release (9.0 for CUDA 13.0),
# which older drivers refuse to JIT (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). The
# kernels need no more than PTX 7.0 (mma.sync bf16, sm_80) and 8.0 (wgmma,
# sm_90a), so the .version line is lowered to that and ptxas then proves the
# lowered text is still valid for every target it must run on.
set -eu
cd "$(dirname "$0")"
NVCC=${NVCC:-nvcc}
PTXAS=${PTXAS:-ptxas}

"$NVCC" -ptx -arch=compute_80 -o verify_sm80.ptx verify_sm80.cu
"$NVCC" -ptx -arch=compute_90a -o verify_sm90a.ptx verify_sm90a.cu

sed -i 's/^\.version .*/.version 7.0/' verify_sm80.ptx
sed -i 's/^\.version .*/.version 8.0/' verify_sm90a.ptx

for arch in sm_80 sm_86 sm_89 sm_90; do
    "$PTXAS" -arch=$arch verify_sm80.ptx -o /dev/null
done
"$PTXAS" -arch=sm_90a verify_sm90a.ptx -o /dev/null
sha256sum verify_sm80.ptx verify_sm90a.ptx
