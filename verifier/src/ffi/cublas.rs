//! cuBLAS and cuBLASLt: the handful of functions the checks call.
//!
//! Enum values are those of `cublas_api.h` / `cublasLt.h` / `library_types.h`,
//! unchanged from CUDA 11 through 13.

use super::{FfiError, Lib};
use std::ffi::{c_int, c_void};
use std::path::Path;

type Handle = *mut c_void;

/// `cudaDataType_t` values used here.
pub mod dtype {
    /// CUDA_R_32F
    pub const R_32F: i32 = 0;
    /// CUDA_R_16BF
    pub const R_16BF: i32 = 14;
    /// CUDA_R_8F_E4M3
    pub const R_8F_E4M3: i32 = 28;
}

/// `cublasComputeType_t` values used here.
pub mod compute {
    /// CUBLAS_COMPUTE_32F
    pub const F32: i32 = 68;
    /// CUBLAS_COMPUTE_32F_FAST_TF32
    pub const F32_FAST_TF32: i32 = 77;
}

const OP_N: i32 = 0;
const OP_T: i32 = 1;
const GEMM_DEFAULT: i32 = -1;
// cublasLtMatmulDescAttributes_t
const DESC_TRANSA: i32 = 3;
const DESC_TRANSB: i32 = 4;
const DESC_A_SCALE_POINTER: i32 = 17;
const DESC_B_SCALE_POINTER: i32 = 18;
// cublasLtMatmulPreferenceAttributes_t
const PREF_MAX_WORKSPACE_BYTES: i32 = 1;

/// `cublasLtMatmulAlgo_t`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Algo {
    data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Heuristic {
    algo: Algo,
    workspace_size: usize,
    state: c_int,
    waves_count: f32,
    reserved: [c_int; 4],
}

/// Name of a `cublasStatus_t`.
pub fn status_name(s: i32) -> String {
    match s {
        0 => "CUBLAS_STATUS_SUCCESS".into(),
        1 => "CUBLAS_STATUS_NOT_INITIALIZED".into(),
        3 => "CUBLAS_STATUS_ALLOC_FAILED".into(),
        7 => "CUBLAS_STATUS_INVALID_VALUE".into(),
        8 => "CUBLAS_STATUS_ARCH_MISMATCH".into(),
        11 => "CUBLAS_STATUS_MAPPING_ERROR".into(),
        13 => "CUBLAS_STATUS_EXECUTION_FAILED".into(),
        14 => "CUBLAS_STATUS_INTERNAL_ERROR".into(),
        15 => "CUBLAS_STATUS_NOT_SUPPORTED".into(),
        16 => "CUBLAS_STATUS_LICENSE_ERROR".into(),
        other => format!("cublasStatus {other}"),
    }
}

fn ok(call: &str, s: i32) -> Result<(), String> {
    if s == 0 {
        Ok(())
    } else {
        Err(format!("{call} returned {}", status_name(s)))
    }
}

type Create = unsafe extern "C" fn(*mut Handle) -> i32;
type Destroy = unsafe extern "C" fn(Handle) -> i32;
type SetMath = unsafe extern "C" fn(Handle, i32) -> i32;
type GetProperty = unsafe extern "C" fn(i32, *mut c_int) -> i32;
type GemmEx = unsafe extern "C" fn(
    Handle,
    i32,
    i32,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    i32,
    c_int,
    *const c_void,
    i32,
    c_int,
    *const c_void,
    *mut c_void,
    i32,
    c_int,
    i32,
    i32,
) -> i32;
type LtVersion = unsafe extern "C" fn() -> usize;
type DescCreate = unsafe extern "C" fn(*mut Handle, i32, i32) -> i32;
type SetAttr = unsafe extern "C" fn(Handle, i32, *const c_void, usize) -> i32;
type LayoutCreate = unsafe extern "C" fn(*mut Handle, i32, u64, u64, i64) -> i32;
type Heur = unsafe extern "C" fn(
    Handle,
    Handle,
    Handle,
    Handle,
    Handle,
    Handle,
    Handle,
    c_int,
    *mut Heuristic,
    *mut c_int,
) -> i32;
type LtMatmul = unsafe extern "C" fn(
    Handle,
    Handle,
    *const c_void,
    *const c_void,
    Handle,
    *const c_void,
    Handle,
    *const c_void,
    *const c_void,
    Handle,
    *mut c_void,
    Handle,
    *const Algo,
    *mut c_void,
    usize,
    *mut c_void,
) -> i32;

/// cuBLAS + cuBLASLt, loaded from the image.
pub struct Cublas {
    /// cuBLASLt library.
    pub lt: Lib,
    /// cuBLAS library.
    pub blas: Lib,
    create: Create,
    destroy: Destroy,
    set_math_mode: SetMath,
    get_property: GetProperty,
    gemm_ex: GemmEx,
    lt_version: LtVersion,
    lt_create: Create,
    lt_destroy: Destroy,
    desc_create: DescCreate,
    desc_destroy: Destroy,
    desc_set: SetAttr,
    layout_create: LayoutCreate,
    layout_destroy: Destroy,
    pref_create: Create,
    pref_destroy: Destroy,
    pref_set: SetAttr,
    heuristic: Heur,
    matmul: LtMatmul,
}

// SAFETY: the struct only holds function pointers and library handles; the
// libraries are thread-safe for distinct cuBLAS handles.
unsafe impl Send for Cublas {}
// SAFETY: as above.
unsafe impl Sync for Cublas {}

impl Cublas {
    /// Loads cuBLASLt first, then cuBLAS (which needs cuBLASLt and finds the
    /// already-loaded copy by soname).
    pub fn load(lt_path: &Path, blas_path: &Path) -> Result<Self, FfiError> {
        let lt = Lib::open(lt_path)?;
        let blas = Lib::open(blas_path)?;
        // SAFETY: signatures follow cublas_api.h and cublasLt.h.
        unsafe {
            Ok(Cublas {
                create: blas.sym("cublasCreate_v2")?,
                destroy: blas.sym("cublasDestroy_v2")?,
                set_math_mode: blas.sym("cublasSetMathMode")?,
                get_property: blas.sym("cublasGetProperty")?,
                gemm_ex: blas.sym("cublasGemmEx")?,
                lt_version: lt.sym("cublasLtGetVersion")?,
                lt_create: lt.sym("cublasLtCreate")?,
                lt_destroy: lt.sym("cublasLtDestroy")?,
                desc_create: lt.sym("cublasLtMatmulDescCreate")?,
                desc_destroy: lt.sym("cublasLtMatmulDescDestroy")?,
                desc_set: lt.sym("cublasLtMatmulDescSetAttribute")?,
                layout_create: lt.sym("cublasLtMatrixLayoutCreate")?,
                layout_destroy: lt.sym("cublasLtMatrixLayoutDestroy")?,
                pref_create: lt.sym("cublasLtMatmulPreferenceCreate")?,
                pref_destroy: lt.sym("cublasLtMatmulPreferenceDestroy")?,
                pref_set: lt.sym("cublasLtMatmulPreferenceSetAttribute")?,
                heuristic: lt.sym("cublasLtMatmulAlgoGetHeuristic")?,
                matmul: lt.sym("cublasLtMatmul")?,
                lt,
                blas,
            })
        }
    }

    /// cuBLAS version from `cublasGetProperty` (major, minor, patch).
    pub fn version(&self) -> Result<(i32, i32, i32), String> {
        let mut v = [0 as c_int; 3];
        for (i, slot) in v.iter_mut().enumerate() {
            // SAFETY: libraryPropertyType 0..2 with an out pointer.
            ok("cublasGetProperty", unsafe {
                (self.get_property)(i as i32, slot)
            })?;
        }
        Ok((v[0], v[1], v[2]))
    }

    /// cuBLASLt version as `cublasLtGetVersion` returns it (e.g. 120804).
    pub fn lt_version(&self) -> usize {
        // SAFETY: no arguments.
        unsafe { (self.lt_version)() }
    }

    /// `C = Aᵀ·B` in FP32 storage with TF32 tensor-core math, column-major,
    /// A stored k×m, B k×n, C m×n (the layout of [`LtSpec`]), through
    /// `cublasGemmEx` with `CUBLAS_COMPUTE_32F_FAST_TF32` (the PyTorch
    /// `allow_tf32` path).
    pub fn gemm_tf32(&self, m: i32, n: i32, k: i32, a: u64, b: u64, c: u64) -> Result<(), String> {
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: out pointer.
        ok("cublasCreate", unsafe { (self.create)(&mut h) })?;
        let alpha = 1.0f32;
        let beta = 0.0f32;
        // SAFETY: handle from cublasCreate; device pointers sized by the caller.
        let r = unsafe {
            // CUBLAS_TF32_TENSOR_OP_MATH = 3: also covers the compute-type path.
            ok("cublasSetMathMode", (self.set_math_mode)(h, 3)).and_then(|_| {
                ok(
                    "cublasGemmEx",
                    (self.gemm_ex)(
                        h,
                        OP_T,
                        OP_N,
                        m,
                        n,
                        k,
                        &alpha as *const f32 as *const c_void,
                        a as *const c_void,
                        dtype::R_32F,
                        k,
                        b as *const c_void,
                        dtype::R_32F,
                        k,
                        &beta as *const f32 as *const c_void,
                        c as *mut c_void,
                        dtype::R_32F,
                        m,
                        compute::F32_FAST_TF32,
                        GEMM_DEFAULT,
                    ),
                )
            })
        };
        // SAFETY: handle from cublasCreate.
        unsafe { (self.destroy)(h) };
        r
    }
}

/// What a cuBLASLt matmul computes. Layout is "TN", column-major:
/// A stored k×m and used transposed, B stored k×n, D m×n; FP8 requires
/// exactly this layout, and it suits the other types as well.
#[derive(Debug, Clone, Copy)]
pub struct LtSpec {
    /// Rows of D.
    pub m: u64,
    /// Columns of D.
    pub n: u64,
    /// Inner dimension.
    pub k: u64,
    /// Type of A and B.
    pub ab_type: i32,
    /// Type of C and D.
    pub cd_type: i32,
    /// `cublasComputeType_t`.
    pub compute: i32,
}

/// A planned cuBLASLt matmul: descriptors and the heuristic's first algorithm.
pub struct LtGemm<'a> {
    blas: &'a Cublas,
    handle: Handle,
    desc: Handle,
    layouts: [Handle; 3],
    algo: Algo,
    /// Workspace the algorithm needs (≤ the workspace given to [`LtGemm::plan`]).
    pub workspace_needed: usize,
    workspace: u64,
    workspace_size: usize,
}

impl<'a> LtGemm<'a> {
    /// Creates descriptors and asks the heuristic for an algorithm.
    /// `scales` (device pointers to one f32 each) are required for FP8.
    pub fn plan(
        blas: &'a Cublas,
        spec: LtSpec,
        scales: Option<(u64, u64)>,
        workspace: u64,
        workspace_size: usize,
    ) -> Result<Self, String> {
        let mut g = LtGemm {
            blas,
            handle: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algo: Algo::default(),
            workspace_needed: 0,
            workspace,
            workspace_size,
        };
        // SAFETY: every call below follows cublasLt.h; the handles are owned
        // by `g` and destroyed in Drop even on early return.
        unsafe {
            ok("cublasLtCreate", (blas.lt_create)(&mut g.handle))?;
            ok(
                "cublasLtMatmulDescCreate",
                (blas.desc_create)(&mut g.desc, spec.compute, dtype::R_32F),
            )?;
            let (ta, tb) = (OP_T, OP_N);
            ok(
                "cublasLtMatmulDescSetAttribute(TRANSA)",
                (blas.desc_set)(g.desc, DESC_TRANSA, &ta as *const i32 as *const c_void, 4),
            )?;
            ok(
                "cublasLtMatmulDescSetAttribute(TRANSB)",
                (blas.desc_set)(g.desc, DESC_TRANSB, &tb as *const i32 as *const c_void, 4),
            )?;
            if let Some((sa, sb)) = scales {
                ok(
                    "cublasLtMatmulDescSetAttribute(A_SCALE)",
                    (blas.desc_set)(
                        g.desc,
                        DESC_A_SCALE_POINTER,
                        &sa as *const u64 as *const c_void,
                        8,
                    ),
                )?;
                ok(
                    "cublasLtMatmulDescSetAttribute(B_SCALE)",
                    (blas.desc_set)(
                        g.desc,
                        DESC_B_SCALE_POINTER,
                        &sb as *const u64 as *const c_void,
                        8,
                    ),
                )?;
            }
            let dims = [
                (spec.ab_type, spec.k, spec.m),
                (spec.ab_type, spec.k, spec.n),
                (spec.cd_type, spec.m, spec.n),
            ];
            for (slot, (t, rows, cols)) in g.layouts.iter_mut().zip(dims) {
                ok(
                    "cublasLtMatrixLayoutCreate",
                    (blas.layout_create)(slot, t, rows, cols, rows as i64),
                )?;
            }
            let mut pref: Handle = std::ptr::null_mut();
            ok(
                "cublasLtMatmulPreferenceCreate",
                (blas.pref_create)(&mut pref),
            )?;
            let ws = workspace_size as u64;
            let mut found: c_int = 0;
            let mut heur = Heuristic::default();
            let r = ok(
                "cublasLtMatmulPreferenceSetAttribute",
                (blas.pref_set)(
                    pref,
                    PREF_MAX_WORKSPACE_BYTES,
                    &ws as *const u64 as *const c_void,
                    8,
                ),
            )
            .and_then(|_| {
                ok(
                    "cublasLtMatmulAlgoGetHeuristic",
                    (blas.heuristic)(
                        g.handle,
                        g.desc,
                        g.layouts[0],
                        g.layouts[1],
                        g.layouts[2],
                        g.layouts[2],
                        pref,
                        1,
                        &mut heur,
                        &mut found,
                    ),
                )
            });
            (blas.pref_destroy)(pref);
            r?;
            if found == 0 {
                return Err("cublasLtMatmulAlgoGetHeuristic found no algorithm (CUBLAS_STATUS_NOT_SUPPORTED for this type on this GPU)".into());
            }
            g.algo = heur.algo;
            g.workspace_needed = heur.workspace_size;
        }
        Ok(g)
    }

    /// `D = A·B` (alpha 1, beta 0) on the default stream.
    pub fn run(&self, a: u64, b: u64, d: u64) -> Result<(), String> {
        let alpha = 1.0f32;
        let beta = 0.0f32;
        // SAFETY: descriptors from plan(); device pointers sized by the caller.
        ok("cublasLtMatmul", unsafe {
            (self.blas.matmul)(
                self.handle,
                self.desc,
                &alpha as *const f32 as *const c_void,
                a as *const c_void,
                self.layouts[0],
                b as *const c_void,
                self.layouts[1],
                &beta as *const f32 as *const c_void,
                d as *const c_void,
                self.layouts[2],
                d as *mut c_void,
                self.layouts[2],
                &self.algo,
                self.workspace as *mut c_void,
                self.workspace_size,
                std::ptr::null_mut(),
            )
        })
    }
}

impl Drop for LtGemm<'_> {
    fn drop(&mut self) {
        // SAFETY: each handle is null or was created by the matching create.
        unsafe {
            for l in self.layouts {
                if !l.is_null() {
                    (self.blas.layout_destroy)(l);
                }
            }
            if !self.desc.is_null() {
                (self.blas.desc_destroy)(self.desc);
            }
            if !self.handle.is_null() {
                (self.blas.lt_destroy)(self.handle);
            }
        }
    }
}
