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
}

/// A cuBLAS handle with tensor-core math allowed, destroyed on drop.
pub struct BlasHandle<'a> {
    blas: &'a Cublas,
    h: Handle,
}

impl<'a> BlasHandle<'a> {
    /// `cublasCreate` + `cublasSetMathMode(CUBLAS_TF32_TENSOR_OP_MATH)`.
    pub fn new(blas: &'a Cublas) -> Result<Self, String> {
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: out pointer.
        ok("cublasCreate", unsafe { (blas.create)(&mut h) })?;
        let handle = BlasHandle { blas, h };
        // CUBLAS_TF32_TENSOR_OP_MATH = 3: also covers the compute-type path.
        // SAFETY: handle from cublasCreate.
        ok("cublasSetMathMode", unsafe { (blas.set_math_mode)(h, 3) })?;
        Ok(handle)
    }

    /// `D = op(A)·op(B)` (alpha 1, beta 0) through `cublasGemmEx` with the
    /// default algorithm, in the layout `spec` describes.
    pub fn gemm_ex(&self, spec: LtSpec, a: u64, b: u64, d: u64) -> Result<(), String> {
        let alpha = 1.0f32;
        let beta = 0.0f32;
        let [(_, _, lda), (_, _, ldb), (_, _, ldd)] = spec.layouts();
        // SAFETY: handle from cublasCreate; device pointers sized by the caller.
        ok("cublasGemmEx", unsafe {
            (self.blas.gemm_ex)(
                self.h,
                if spec.trans_a { OP_T } else { OP_N },
                if spec.trans_b { OP_T } else { OP_N },
                spec.m as c_int,
                spec.n as c_int,
                spec.k as c_int,
                &alpha as *const f32 as *const c_void,
                a as *const c_void,
                spec.ab_type,
                lda as c_int,
                b as *const c_void,
                spec.ab_type,
                ldb as c_int,
                &beta as *const f32 as *const c_void,
                d as *mut c_void,
                spec.cd_type,
                ldd as c_int,
                spec.compute,
                GEMM_DEFAULT,
            )
        })
    }
}

impl Drop for BlasHandle<'_> {
    fn drop(&mut self) {
        // SAFETY: handle from cublasCreate, destroyed once.
        unsafe { (self.blas.destroy)(self.h) };
    }
}

/// What a matmul computes: `D = op(A)·op(B)`, column-major, D m×n. "TN"
/// (A stored k×m and used transposed, B stored k×n) keeps both operands
/// K-major, which FP8 requires and the tensor cores read best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// A is stored k×m and used transposed.
    pub trans_a: bool,
    /// B is stored n×k and used transposed.
    pub trans_b: bool,
}

impl LtSpec {
    /// The "TN" layout.
    pub fn tn(m: u64, n: u64, k: u64, ab_type: i32, cd_type: i32, compute: i32) -> Self {
        LtSpec {
            m,
            n,
            k,
            ab_type,
            cd_type,
            compute,
            trans_a: true,
            trans_b: false,
        }
    }

    /// `TN`, `NN`, `NT` or `TT`.
    pub fn layout_name(&self) -> &'static str {
        match (self.trans_a, self.trans_b) {
            (true, false) => "TN",
            (false, false) => "NN",
            (false, true) => "NT",
            (true, true) => "TT",
        }
    }

    /// (rows, cols, leading dimension) of A, B and D as stored.
    fn layouts(&self) -> [(u64, u64, u64); 3] {
        let a = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let b = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        [(a.0, a.1, a.0), (b.0, b.1, b.0), (self.m, self.n, self.m)]
    }
}

/// A planned cuBLASLt matmul: descriptors and the algorithms the heuristic
/// offers, best guess first.
pub struct LtGemm<'a> {
    blas: &'a Cublas,
    handle: Handle,
    desc: Handle,
    layouts: [Handle; 3],
    algos: Vec<(Algo, usize)>,
    chosen: usize,
    workspace: u64,
    workspace_size: usize,
}

impl<'a> LtGemm<'a> {
    /// Creates descriptors and asks the heuristic for its first algorithm.
    /// `scales` (device pointers to one f32 each) are required for FP8.
    pub fn plan(
        blas: &'a Cublas,
        spec: LtSpec,
        scales: Option<(u64, u64)>,
        workspace: u64,
        workspace_size: usize,
    ) -> Result<Self, String> {
        Self::plan_candidates(blas, spec, scales, workspace, workspace_size, 1)
    }

    /// Like [`LtGemm::plan`], keeping up to `max_algos` of the heuristic's
    /// algorithms (its order: best guess first) to choose from by timing.
    pub fn plan_candidates(
        blas: &'a Cublas,
        spec: LtSpec,
        scales: Option<(u64, u64)>,
        workspace: u64,
        workspace_size: usize,
        max_algos: usize,
    ) -> Result<Self, String> {
        let mut g = LtGemm {
            blas,
            handle: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algos: Vec::new(),
            chosen: 0,
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
            let ta = if spec.trans_a { OP_T } else { OP_N };
            let tb = if spec.trans_b { OP_T } else { OP_N };
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
            let types = [spec.ab_type, spec.ab_type, spec.cd_type];
            for ((slot, t), (rows, cols, ld)) in g.layouts.iter_mut().zip(types).zip(spec.layouts())
            {
                ok(
                    "cublasLtMatrixLayoutCreate",
                    (blas.layout_create)(slot, t, rows, cols, ld as i64),
                )?;
            }
            let mut pref: Handle = std::ptr::null_mut();
            ok(
                "cublasLtMatmulPreferenceCreate",
                (blas.pref_create)(&mut pref),
            )?;
            let ws = workspace_size as u64;
            let mut found: c_int = 0;
            let max = max_algos.clamp(1, 32);
            let mut heur = vec![Heuristic::default(); max];
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
                        max as c_int,
                        heur.as_mut_ptr(),
                        &mut found,
                    ),
                )
            });
            (blas.pref_destroy)(pref);
            r?;
            if found == 0 {
                return Err("cublasLtMatmulAlgoGetHeuristic found no algorithm (CUBLAS_STATUS_NOT_SUPPORTED for this type on this GPU)".into());
            }
            g.algos = heur
                .iter()
                .take(found.max(0) as usize)
                .filter(|h| h.state == 0)
                .map(|h| (h.algo, h.workspace_size))
                .collect();
            if g.algos.is_empty() {
                return Err("cublasLtMatmulAlgoGetHeuristic offered no usable algorithm".into());
            }
        }
        Ok(g)
    }

    /// How many algorithms the heuristic offered.
    pub fn candidates(&self) -> usize {
        self.algos.len()
    }

    /// Makes algorithm `i` (in the heuristic's order) the one [`LtGemm::run`] uses.
    pub fn choose(&mut self, i: usize) {
        if i < self.algos.len() {
            self.chosen = i;
        }
    }

    /// The algorithm in use (its index in the heuristic's order).
    pub fn chosen(&self) -> usize {
        self.chosen
    }

    /// Workspace the chosen algorithm needs (≤ the workspace given to the plan).
    pub fn workspace_needed(&self) -> usize {
        self.algos.get(self.chosen).map(|a| a.1).unwrap_or(0)
    }

    /// `D = A·B` (alpha 1, beta 0) on the default stream.
    pub fn run(&self, a: u64, b: u64, d: u64) -> Result<(), String> {
        let alpha = 1.0f32;
        let beta = 0.0f32;
        let (algo, _) = self.algos.get(self.chosen).ok_or("no algorithm planned")?;
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
                algo,
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
