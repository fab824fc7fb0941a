#!/bin/bash
# The full level (throughput and bandwidth) and, with more than one GPU, the
# NCCL all-reduce, on every visible GPU; then the quick level on one GPU.
# usage (repository root, on the GPU machine): verifier/device/measure-full.sh OUTDIR
# input: .carry/strata-verify
set -u
OUT=${1:?usage: measure-full.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/measure-full.log") 2>&1
BIN=$(pwd)/.carry/strata-verify
export STRATA_CUDA_VERSION=13.0 STRATA_ALLOWED_SM=sm_80,sm_90
echo "=== machine"; date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
nvidia-smi topo -m 2>/dev/null | head -5
env | grep -E '^NCCL_' || true
echo "=== quick, all GPUs"
"$BIN" --json-file "$OUT/quick-all.json" 2>&1 | grep -v '^  lib'
echo "=== full, all GPUs (CUBLASLT_LOG_LEVEL=1: cuBLASLt prints the reason of any error)"
CUBLASLT_LOG_LEVEL=1 "$BIN" --level full --json-file "$OUT/full-all.json" 2>&1 | grep -v '^  lib'
echo "=== full, GPU 0 alone"
CUDA_VISIBLE_DEVICES=0 CUBLASLT_LOG_LEVEL=1 "$BIN" --level full --json-file "$OUT/full-gpu0.json" 2>&1 | grep -E 'gemm|hbm|verdict'
echo "=== start-up until the command has run: strata-verify -- true (GPU 0 alone, all GPUs), torch; 5 runs each"
wall() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk "BEGIN{printf \" %.3f\", $t1 - $t0}"; }
echo "GPU 0 alone wall s:$(for i in 1 2 3 4 5; do CUDA_VISIBLE_DEVICES=0 wall "$BIN" -- true; done)"
echo "all GPUs wall s:$(for i in 1 2 3 4 5; do wall "$BIN" -- true; done)"
echo "torch (all GPUs) wall s:$(for i in 1 2 3 4 5; do wall python3 -c 'import torch; torch.cuda.is_available(); torch.ones(1).cuda()'; done)"
