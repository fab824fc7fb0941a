"""PyTorch's GEMM rates for the shapes and types of strata-verify's full level.

8192^3, bf16 (fp32 accumulate), TF32 (fp32 storage, allow_tf32) and FP8
e4m3 x e4m3 -> bf16 (torch._scaled_mm), timed the way the verifier times
them: 5 warm-up runs, then the median of 5 batches of 10 between CUDA
events. Every layout PyTorch can be asked for (NN, TN, NT), both BLAS
back ends, and two kinds of data (randn, and the verifier's +-[0.5, 1) with
random mantissas), so that "the best PyTorch reaches" is the best of all.

usage: python3 verifier/device/torch_gemm.py [--short]   (one line per case)
  --short: only the cases that were fastest on an H100 (NN and NT through
  cuBLAS, and FP8), to repeat between the verifier's own runs.
"""

import statistics
import sys

import torch

N = 8192


def bench(fn, iters=10, batches=5, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    rates = []
    for _ in range(batches):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        ms = start.elapsed_time(stop)
        rates.append(2 * N**3 * iters / (ms * 1e-3) / 1e12)
    return statistics.median(rates)


def data(dtype, kind):
    if kind == "randn":
        x = torch.randn(N, N, device="cuda")
    else:
        x = torch.empty(N, N, device="cuda").uniform_(0.5, 1.0)
        x *= torch.randint(0, 2, (N, N), device="cuda") * 2 - 1
    return x.to(dtype)


def main():
    short = "--short" in sys.argv[1:]
    torch.backends.cuda.matmul.allow_tf32 = True
    best = {}
    for name, dtype in (("bf16", torch.bfloat16), ("tf32", torch.float32)):
        for kind in ("randn", "pm"):
            a, b = data(dtype, kind), data(dtype, kind)
            c = torch.empty(N, N, device="cuda", dtype=dtype)
            cases = {
                "NN": lambda: torch.mm(a, b, out=c),
                "TN": lambda: torch.mm(a.t(), b, out=c),
                "NT": lambda: torch.mm(a, b.t(), out=c),
            }
            for lib in ("cublas",) if short else ("cublas", "cublaslt"):
                try:
                    torch.backends.cuda.preferred_blas_library(lib)
                except Exception as e:  # older PyTorch
                    print(f"torch {name}: cannot select {lib}: {e}")
                    continue
                for layout, fn in cases.items():
                    if short and layout == "TN":
                        continue
                    r = bench(fn)
                    best[name] = max(best.get(name, 0.0), r)
                    print(f"torch {name} {kind:5} {layout} {lib:8}: {r:7.1f} TFLOP/s", flush=True)
            del a, b, c
    torch.backends.cuda.preferred_blas_library("cublas")
    one = torch.tensor(1.0, device="cuda")
    for kind in ("randn", "pm"):
        a = data(torch.float32, kind).to(torch.float8_e4m3fn)
        b = data(torch.float32, kind).to(torch.float8_e4m3fn)
        # _scaled_mm wants A row-major and B column-major: the "TN" of cuBLASLt.
        r = bench(lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
        best["fp8"] = max(best.get("fp8", 0.0), r)
        print(f"torch fp8  {kind:5} TN _scaled_mm: {r:7.1f} TFLOP/s", flush=True)
    for name in ("bf16", "tf32", "fp8"):
        print(f"torch best {name}: {best.get(name, 0.0):.1f} TFLOP/s")


if __name__ == "__main__":
    main()
