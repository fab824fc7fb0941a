//! Planning: every source of every layer entry turned into layer parts
//! before any layer is written, so the image's layer count is known (and
//! capped) first.

use super::BuildError;
use crate::sources::verifier::Verifier;
use crate::sources::{Context, Part, Source, SourceError};
use crate::spec::{LoadedSpec, ResolvedLayer};

pub use super::remote::PlannedPart as RecordedPart;

impl RecordedPart {
    /// The part as planned, from a source's real part.
    pub fn of(p: &Part<'_>) -> RecordedPart {
        RecordedPart { name: p.name.clone(), fingerprint: p.fingerprint.clone(), packages: p.packages.clone() }
    }

    /// A part whose layer the cache holds: it is never populated.
    pub fn stub<'s>(&self) -> Part<'s> {
        Part {
            name: self.name.clone(),
            fingerprint: self.fingerprint.clone(),
            populate: Box::new(|_, _| {
                Err(SourceError::Message("internal: a layer found in the cache was to be built again".into()))
            }),
            packages: self.packages.clone(),
        }
    }
}

/// How the parts of one layer entry make layers: one per part of a source
/// that splits (it must be alone in the entry), else one for all of them.
/// `None` when a splitting source is not alone.
pub fn group<T>(per_source: Vec<Vec<T>>) -> Option<Vec<Vec<T>>> {
    if per_source.iter().any(|p| p.len() > 1) {
        if per_source.len() > 1 {
            return None;
        }
        Some(per_source.into_iter().flatten().map(|p| vec![p]).collect())
    } else {
        Some(vec![per_source.into_iter().flatten().collect()])
    }
}

/// The most layers an image may have; deeper images are refused by common
/// container runtimes (overlayfs stacking limits).
pub const MAX_LAYERS: usize = crate::sources::python::layering::MAX_IMAGE_LAYERS;

/// One layer of the image, planned.
pub struct PlannedLayer<'s> {
    /// Its name (`entry`, or `entry/part` for a source that splits).
    pub name: String,
    /// The parts that fill it.
    pub parts: Vec<Part<'s>>,
    /// The spec entry it comes from (none for the verifier's layer).
    pub entry: Option<&'s ResolvedLayer>,
}

/// Plans the layers of `spec`: one per layer entry (or one per part for a
/// source that splits, which must then be alone in its entry), then the
/// verifier's layer. `recorded[i]`, when given, holds the parts of each
/// source of entry `i` as the layer cache recorded them (their layers are
/// all in the cache, so they are never populated); `planned` is told of
/// every source planned here.
pub fn plan<'s>(
    spec: &'s LoadedSpec,
    sources: &'s [Vec<Box<dyn Source + 's>>],
    verifier: Option<&'s Verifier>,
    ctx: &Context<'_>,
    recorded: &[Option<Vec<Vec<RecordedPart>>>],
    planned_hook: &dyn Fn(&dyn Source, &[Part<'_>]),
) -> Result<Vec<PlannedLayer<'s>>, BuildError> {
    let mut layers = Vec::new();
    for (i, (resolved, srcs)) in spec.layers.iter().zip(sources).enumerate() {
        let lname = resolved.display_name();
        let mut planned: Vec<Vec<Part<'s>>> = Vec::new();
        if let Some(Some(rec)) = recorded.get(i) {
            for parts in rec {
                planned.push(parts.iter().map(RecordedPart::stub).collect());
            }
        } else {
            for s in srcs {
                let parts = s.plan_with(ctx).map_err(|e| BuildError::source(resolved, &lname, e))?;
                planned_hook(s.as_ref(), &parts);
                planned.push(parts);
            }
        }
        // A source that splits into several layers stands alone; otherwise all
        // parts of the entry merge into one layer.
        if planned.iter().any(|p| p.len() > 1) {
            if planned.len() > 1 {
                return Err(BuildError::source(resolved, &lname, SourceError::Message(
                    "a source that makes several layers must be the only source of its layer entry; move the other sources to their own entry".into(),
                )));
            }
            for p in planned.into_iter().flatten() {
                let name = p.name.clone().map(|n| format!("{lname}/{n}")).unwrap_or_else(|| lname.clone());
                layers.push(PlannedLayer { name, parts: vec![p], entry: Some(resolved) });
            }
        } else {
            layers.push(PlannedLayer {
                name: lname,
                parts: planned.into_iter().flatten().collect(),
                entry: Some(resolved),
            });
        }
    }
    // A `bytecode:` layer is made from every layer below it: their
    // fingerprints are part of its own. It runs the image's interpreter,
    // so it needs a machine of the image's architecture.
    let mut below = String::new();
    for l in &mut layers {
        if let Some(resolved) = l.entry.filter(|e| e.entry.bytecode.is_some()) {
            let platform = spec.spec.platform.as_deref().unwrap_or("linux/amd64");
            let arch = crate::spec::parse_platform(platform).map(|(_, a, _)| a).unwrap_or_default();
            let host = crate::sources::bytecode::host_arch();
            if arch != host {
                return Err(BuildError::source(resolved, &l.name, SourceError::Message(format!(
                    "`bytecode:` runs the image's own Python, which needs a {arch} machine; this one is {host}\nhint: build this spec on a {arch} machine, or leave `bytecode:` out of cross-architecture builds"
                ))));
            }
            let digest = crate::digest::Digest::of(below.as_bytes());
            for p in &mut l.parts {
                p.fingerprint.push_str(&format!("below {digest}\n"));
            }
        }
        for p in &l.parts {
            below.push_str(&p.fingerprint);
            below.push('\n');
        }
    }
    if let Some(v) = verifier {
        let parts = v.plan().map_err(|source| BuildError::Verifier { source })?;
        layers.push(PlannedLayer { name: "strata-verify".into(), parts, entry: None });
    }
    if layers.len() > MAX_LAYERS {
        return Err(BuildError::TooManyLayers { spec: spec.path.clone(), layers: layers.len() });
    }
    Ok(layers)
}
