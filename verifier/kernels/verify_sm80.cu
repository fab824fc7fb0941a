// Kernels of strata-verify for compute capability 8.0 and newer (A100, and
// H100/H200 through the driver's PTX JIT). Built to PTX by build.sh; the PTX
// is embedded in the binary and JIT-compiled by the driver for the GPU found.
//
// Every kernel works on small integers or bit patterns so results can be
// compared exactly with the host (verifier/src/kernels.rs).
#include <stdint.h>

extern "C" {

// 32-bit mixing function of an index; the host has the same one
// (kernels.rs::mix). Used for memory patterns and random GEMM inputs.
__device__ __forceinline__ uint32_t mix(uint64_t i, uint32_t seed) {
    uint32_t x = (uint32_t)i ^ ((uint32_t)(i >> 32) * 0x9E3779B9u) ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// p[i] = (mix(i, seed) & and_mask) | or_mask over n 32-bit words.
// With masks it also produces random bf16/f32/fp8 values in a chosen range.
__global__ void fill_pattern(uint32_t* p, uint64_t n, uint32_t seed, uint32_t and_mask, uint32_t or_mask) {
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        p[i] = (mix(i, seed) & and_mask) | or_mask;
}

// Counts words that differ from what fill_pattern wrote.
__global__ void check_pattern(const uint32_t* p, uint64_t n, uint32_t seed, uint32_t and_mask, uint32_t or_mask,
                              unsigned long long* errors) {
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    unsigned long long bad = 0;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        bad += (p[i] != ((mix(i, seed) & and_mask) | or_mask)) ? 1ull : 0ull;
    if (bad) atomicAdd(errors, bad);
}

// 16-byte-per-thread copy, for the HBM bandwidth figure.
__global__ void copy_u4(const uint4* __restrict__ src, uint4* __restrict__ dst, uint64_t n) {
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = src[i];
}

// One warp per block: D (16x8, f32, row-major) = A (16x16 bf16, row-major)
// x B (16x8, given as 8 rows of 16 k-values), on the tensor cores through
// mma.sync.m16n8k16. Every block computes the same product into its own
// 128-float slot, so launching a few blocks per SM exercises every SM.
__global__ void __launch_bounds__(32) mma_bf16_m16n8k16(const uint16_t* a, const uint16_t* b, float* d) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;  // row group
    const int t = lane & 3;   // thread in group
    // Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix fragments for
    // mma.m16n8k16"): the lower-indexed element sits in the low half.
#define PACK(lo, hi) ((uint32_t)(lo) | ((uint32_t)(hi) << 16))
    uint32_t a0 = PACK(a[g * 16 + t * 2], a[g * 16 + t * 2 + 1]);
    uint32_t a1 = PACK(a[(g + 8) * 16 + t * 2], a[(g + 8) * 16 + t * 2 + 1]);
    uint32_t a2 = PACK(a[g * 16 + t * 2 + 8], a[g * 16 + t * 2 + 9]);
    uint32_t a3 = PACK(a[(g + 8) * 16 + t * 2 + 8], a[(g + 8) * 16 + t * 2 + 9]);
    uint32_t b0 = PACK(b[g * 16 + t * 2], b[g * 16 + t * 2 + 1]);
    uint32_t b1 = PACK(b[g * 16 + t * 2 + 8], b[g * 16 + t * 2 + 9]);
#undef PACK
    float c0 = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f;
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3)
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    float* out = d + (uint64_t)blockIdx.x * 128;
    out[g * 8 + t * 2] = c0;
    out[g * 8 + t * 2 + 1] = c1;
    out[(g + 8) * 8 + t * 2] = c2;
    out[(g + 8) * 8 + t * 2 + 1] = c3;
}

}  // extern "C"
