#!/bin/bash
# The 2026-11-28 measurements; verify-all.sh now covers the same and more, and
# this script stays for its runc smoke-bundle section. Everything measured on
# the GPU machine for docs/verifier.md and docs/benchmarks.md, in one go (device time is scarce): machine facts, the
# driver's library layout, the PTX build, the quick and full levels, start-up
# time against PyTorch, the failure words, and the verifier under runc.
#
# usage (repository root, on the GPU machine):
#   verifier/device/measure.sh OUTDIR
# inputs: .carry/strata-verify (the binary built here, see docs/verifier.md),
#         .carry/smoke/ (make-smoke-bundle.sh), optional.
# env: DEV_KERNELS=1 to build the PTX from kernels/*.cu with nvcc and use it
#      instead of the embedded copy (binary built with --features dev-kernels).
#      RUNS (default 10) start-up repetitions.
set -u
OUT=${1:?usage: measure.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/measure.log") 2>&1
BIN=$(pwd)/.carry/strata-verify
RUNS=${RUNS:-10}
PY=${PYTHON:-python3}
TORCH_NVIDIA=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia 2>/dev/null | head -1)
section() { echo; echo "=== $* ==="; }
now() { date +%s.%N; }

section machine
date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,persistence_mode,power.limit --format=csv
uname -r; grep PRETTY /etc/os-release; nvcc --version | tail -2; "$PY" -c 'import torch; print("torch", torch.__version__)'

section driver layout
ls -la /usr/local/nvidia/lib64 | awk '{print $NF, $(NF-2)}' | head -60
ls -la /dev/nvidia* /dev/nvidia-caps 2>&1
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
ldconfig -p | grep -E 'libcuda\.so|libnvidia-ml' || echo "(libcuda not in ld.so.cache)"
cat /proc/driver/nvidia/version 2>&1 | head -1
echo "torch nvidia dir: $TORCH_NVIDIA"; ls "$TORCH_NVIDIA"/*/lib 2>&1 | head -60
ls -la /usr/local/cuda/lib64/stubs/libcuda.so 2>&1

if [ "${DEV_KERNELS:-0}" = 1 ]; then
    section kernels
    K=$(mktemp -d); chmod 755 "$K"
    cp verifier/kernels/*.cu verifier/kernels/build.sh "$K/"
    (cd "$K" && sh -x ./build.sh) && cp "$K"/*.ptx "$OUT/"
    head -20 "$K/verify_sm80.ptx"; grep -c . "$K"/*.ptx
    ptxas -arch=sm_90a -v "$K/verify_sm90a.ptx" -o "$K/w.cubin" 2>&1 | tail -3
    cuobjdump --dump-sass "$K/w.cubin" 2>/dev/null | grep -m3 -E 'HGMMA|WGMMA' || echo "(no HGMMA in SASS?)"
    ptxas -arch=sm_90 "$K/verify_sm80.ptx" -o "$K/m.cubin" && cuobjdump --dump-sass "$K/m.cubin" | grep -m2 HMMA
    export STRATA_VERIFY_DEV_KERNELS=$K
fi

export STRATA_CUDA_VERSION=13.0 STRATA_ALLOWED_SM=sm_80,sm_90
section "quick level (image CUDA 13.0, wheels from $TORCH_NVIDIA)"
"$BIN" --json-file "$OUT/quick.json" -- sh -c 'echo "command ran: pid $$ (parent $PPID), result $STRATA_VERIFY_RESULT"; ls -l /proc/$$/fd | tail -n +2 | awk "{print \$9, \$10, \$11}"'
echo "exit $?; this shell's pid $$"

if [ "${DEV_KERNELS:-0}" = 1 ] && grep -q '"name": "wgmma-sm90a"' "$OUT/quick.json" && ! grep -A3 '"name": "wgmma-sm90a"' "$OUT/quick.json" | grep -q pass; then
    section "wgmma with LBO/SBO swapped (descriptor experiment)"
    STRATA_VERIFY_DEV_WGMMA_SWAP=1 "$BIN" --warn 2>&1 | grep wgmma
fi

section "start-up: strata-verify quick, $RUNS runs (JIT cache off, then on)"
for cache in 1 0; do
    times=""
    for i in $(seq "$RUNS"); do
        t0=$(now); CUDA_CACHE_DISABLE=$cache "$BIN" >/dev/null 2>"$OUT/last.txt"; rc=$?; t1=$(now)
        times="$times $(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")"
        [ $rc = 0 ] || { echo "run $i exit $rc"; tail -5 "$OUT/last.txt"; }
    done
    echo "CUDA_CACHE_DISABLE=$cache wall s:$times"
done
grep -E "^  (PASS|WARN|FAIL|SKIP)" "$OUT/last.txt"; tail -1 "$OUT/last.txt" | head -1; grep verdict "$OUT/last.txt"

section "start-up: python3 -c 'import torch; torch.cuda.is_available(); torch.ones(1).cuda()', 5 runs"
times=""
for i in 1 2 3 4 5; do
    t0=$(now); "$PY" -c "import torch; torch.cuda.is_available(); torch.ones(1).cuda()"; t1=$(now)
    times="$times $(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")"
done
echo "torch wall s:$times"

section "full level"
# CUBLASLT_LOG_LEVEL=1: cuBLASLt prints the reason of any error it returns.
CUBLASLT_LOG_LEVEL=1 "$BIN" --level full --json-file "$OUT/full.json" 2>&1 | grep -v '^  lib'

section "failure words"
echo "--- allowed set sm_80 only (strict: command must not run)"
STRATA_ALLOWED_SM=sm_80 "$BIN" -- echo SHOULD-NOT-RUN 2>&1 | grep -E "FAIL|fix|not starting|SHOULD"; echo "exit ${PIPESTATUS[0]}"
echo "--- NVIDIA_REQUIRE_CUDA='cuda>=13.1 brand=tesla,driver>=535,driver<536' (brand through NVML)"
NVIDIA_REQUIRE_CUDA='cuda>=13.1 brand=tesla,driver>=535,driver<536' "$BIN" --warn -- echo ran-anyway 2>&1 | grep -E "require|fix: please|ran-anyway"
echo "--- image declares CUDA 12.8 but carries CUDA 13 libraries"
STRATA_CUDA_VERSION=12.8 "$BIN" --warn 2>&1 | grep -E "cuda-compat|FAIL  cublas|FAIL  cudnn"
echo "--- no GPU visible (CUDA_VISIBLE_DEVICES='')"
CUDA_VISIBLE_DEVICES= "$BIN" 2>&1 | grep -E "FAIL|fix" | head -4
echo "--- CUDA stubs directory first on LD_LIBRARY_PATH (libcuda.so leads to the stub: a warning)"
LD_LIBRARY_PATH=/usr/local/cuda/lib64/stubs:${LD_LIBRARY_PATH:-} "$BIN" -- sh -c 'echo "command sees LD_LIBRARY_PATH=$LD_LIBRARY_PATH"' 2>&1 | grep -E "environment|libcuda|cuinit|verdict|command sees"
echo "--- a stub posing as libcuda.so.1"
S=$(mktemp -d); ln -s /usr/local/cuda/lib64/stubs/libcuda.so "$S/libcuda.so.1"
LD_LIBRARY_PATH=$S:${LD_LIBRARY_PATH:-} "$BIN" 2>&1 | grep -E "FAIL|fix" | head -3

if [ -d .carry/smoke/bundle ]; then
    section "runc: smoke image built by strata, unpacked by umoci"
    extra=()
    [ -n "${STRATA_VERIFY_DEV_KERNELS:-}" ] && extra=(--bind "$STRATA_VERIFY_DEV_KERNELS:/kernels" --env STRATA_VERIFY_DEV_KERNELS=/kernels)
    [ -n "$TORCH_NVIDIA" ] && extra+=(--bind "$TORCH_NVIDIA:/usr/local/lib/python3.11/dist-packages/nvidia")
    cp "$BIN" .carry/smoke/bundle/rootfs/usr/local/bin/strata-verify
    RUNC=$(pwd)/.carry/smoke/runc verifier/device/run-bundle.sh "${extra[@]}" .carry/smoke/bundle
    echo "runc exit $?"
    echo "--- same bundle, chroot"
    verifier/device/run-bundle.sh --chroot "${extra[@]}" .carry/smoke/bundle 2>&1 | tail -4
    echo "chroot exit $?"
    echo "--- same bundle without zlib (chroot): a dependency of cuDNN missing from the image"
    rm -rf /tmp/nozlib && cp -a .carry/smoke/bundle /tmp/nozlib && rm -f /tmp/nozlib/rootfs/lib/x86_64-linux-gnu/libz.so*
    verifier/device/run-bundle.sh --chroot "${extra[@]}" /tmp/nozlib 2>&1 | grep -E "cudnn|verdict|not starting"
fi
section done
