//! Checks that need no layer written: every source's own check before
//! anything is downloaded (lock files, wheel selection), and the CUDA stack
//! against the spec's `gpu:` section, from the locks before downloading and
//! from the fetched wheels' metadata after.

use super::BuildError;
use crate::sources::{GpuCheckError, Source};
use crate::spec::LoadedSpec;
use crate::store::Store;

/// Every source's own check.
pub fn sources(spec: &LoadedSpec, sources: &[Vec<Box<dyn Source + '_>>]) -> Result<(), BuildError> {
    for (resolved, srcs) in spec.layers.iter().zip(sources) {
        for s in srcs {
            s.check().map_err(|e| BuildError::source(resolved, &resolved.display_name(), e))?;
        }
    }
    Ok(())
}

/// The CUDA stack: from the locks alone when `store` is `None`, else also
/// from what was fetched.
///
/// With `store`, the first `skip` layer entries are not read: the layer
/// cache holds their layers, so their artifacts were not fetched (the
/// check from the lock alone ran before).
pub fn gpu(
    spec: &LoadedSpec,
    sources: &[Vec<Box<dyn Source + '_>>],
    store: Option<&Store>,
    skip: usize,
) -> Result<(), BuildError> {
    let Some(gpu) = &spec.spec.gpu else { return Ok(()) };
    let cuda = |source| BuildError::Gpu { spec: spec.path.clone(), source };
    crate::cuda::check_gpu(gpu).map_err(cuda)?;
    let skip = if store.is_some() { skip } else { 0 };
    for (resolved, srcs) in spec.layers.iter().zip(sources).skip(skip) {
        for s in srcs {
            match s.check_gpu(gpu, store) {
                Ok(()) => {}
                Err(GpuCheckError::Cuda(e)) => return Err(cuda(e)),
                Err(GpuCheckError::Source(e)) => return Err(BuildError::source(resolved, &resolved.display_name(), e)),
            }
        }
    }
    Ok(())
}
