// The Hopper-only kernel of strata-verify: a warpgroup matrix multiply
// (wgmma.mma_async) with both operands in shared memory, which exists only
// for the sm_90a target and runs only on compute capability 9.0.
// Built to PTX by build.sh.
#include <stdint.h>

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// start address, leading-dimension byte offset (between core matrices that
// are adjacent along K) and stride byte offset (adjacent along M or N), each
// in units of 16 bytes; no swizzle.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFF) << 32);
}

extern "C" {

// One warpgroup (128 threads) per block: D (64x8 f32, row-major) =
// A (64x32 bf16, row-major) x B (32x8, given as 8 rows of 32 k-values), as
// two m64n8k16 steps accumulating into the same registers. The operands are
// stored as 8x(16-byte) core matrices, K-major, no swizzle: core (i, j) of A
// (i along M, j along K) starts at byte i*512 + j*128, of B at j*128.
// `lbo`/`sbo` are passed in so the host states the layout (128 and 512).
// Every block computes the same product into its own 512-float slot.
__global__ void __launch_bounds__(128) wgmma_bf16_m64n8k32(const uint16_t* a, const uint16_t* b, float* d,
                                                           uint32_t lbo, uint32_t sbo) {
    __shared__ __align__(1024) uint16_t sa[64 * 32];
    __shared__ __align__(1024) uint16_t sb[8 * 32];
    const int t = threadIdx.x;
    for (int i = t; i < 64 * 32; i += 128) {
        int m = i >> 5, k = i & 31;
        sa[(m >> 3) * 256 + (k >> 3) * 64 + (m & 7) * 8 + (k & 7)] = a[i];
    }
    for (int i = t; i < 8 * 32; i += 128) {
        int n = i >> 5, k = i & 31;
        sb[(k >> 3) * 64 + n * 8 + (k & 7)] = b[i];
    }
    // Make the ordinary shared-memory stores visible to the tensor cores'
    // asynchronous proxy before the barrier.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();

    const uint32_t sa_addr = (uint32_t)__cvta_generic_to_shared(sa);
    const uint32_t sb_addr = (uint32_t)__cvta_generic_to_shared(sb);
    float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kb = 0; kb < 2; ++kb) {
        uint64_t da = smem_desc(sa_addr + kb * 256, lbo, sbo);
        uint64_t db = smem_desc(sb_addr + kb * 256, lbo, sbo);
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, %4, %5, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
            : "l"(da), "l"(db), "r"(1));
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");

    // Accumulator layout of m64nNk16: warp w of the warpgroup holds rows
    // 16w..16w+15 in the m16n8 fragment layout.
    const int warp = t >> 5, lane = t & 31;
    const int row = warp * 16 + (lane >> 2), col = (lane & 3) * 2;
    float* out = d + (uint64_t)blockIdx.x * 512;
    out[row * 8 + col] = d0;
    out[row * 8 + col + 1] = d1;
    out[(row + 8) * 8 + col] = d2;
    out[(row + 8) * 8 + col + 1] = d3;
}

}  // extern "C"
