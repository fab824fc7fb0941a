//! `strata audit`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use strata::build::{build, BuildOptions};
use strata::image::{Image, ImageSource};
use strata::oci::{ImageRef, Platform};
use strata::provenance;

use super::progress::CliReporter;
use super::{fetch_options, out, NetArgs};
use crate::GlobalArgs;

/// Rebuild an image from its spec and compare it with a published image.
/// Exit status: 0 identical, 1 different, 2 trouble.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The image spec; with --source, omit it: the image's provenance names
    /// the spec, and the only argument is the image.
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// The published image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE.
    pub image: Option<String>,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR", conflicts_with = "source")]
    pub context: Option<PathBuf>,
    /// Audit from the image's provenance: DIR is the source tree (build
    /// context) the provenance's spec and lock paths are relative to; the
    /// rebuild uses the recorded spec, lock and epoch.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// With --source: require the provenance to be signed by this public
    /// key (a file or env://VAR).
    #[arg(long, value_name = "PUB", requires = "source")]
    pub provenance_key: Option<String>,
    /// Print the verdict and the full comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// The strata-verify binary for specs with a `gpu:` section.
    #[arg(long, env = "STRATA_VERIFIER", value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    /// Audit only this platform of a spec with `platforms:` (OS/ARCH).
    /// Default: every platform the spec builds, each against the published
    /// index's image for it.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// The provenance statement attached to `src`'s root, opened (and checked
/// against `key` when given).
fn provenance_of(src: &dyn ImageSource, key: Option<&str>) -> anyhow::Result<provenance::Provenance> {
    let root = src.root()?;
    let refs = src.referrers(&root)?;
    let d = refs
        .iter()
        .find(|d| d.artifact_type.as_deref() == Some(provenance::MEDIA_TYPE))
        .with_context(|| format!("{} has no provenance (strata attaches it to every build)", src.describe()))?;
    let m = src.manifest(d)?.manifest("the provenance manifest")?;
    let layer = m
        .layers
        .iter()
        .find(|l| l.media_type == provenance::MEDIA_TYPE)
        .context("the provenance manifest holds no DSSE envelope")?;
    let bytes = strata::image::read_blob(src, layer)?;
    let key = key.map(strata::sign::keys::load_public_key).transpose()?;
    let stmt = provenance::open_envelope(&bytes, key.as_ref())?;
    let p = provenance::parse(&stmt)?;
    if p.subject.1 != root.digest && !root.is_index() {
        anyhow::bail!("the provenance is about {}, not this image ({})", p.subject.1, root.digest);
    }
    Ok(p)
}

/// Runs the audit; `Ok(true)` when identical.
pub fn run(args: AuditArgs, global: &GlobalArgs) -> anyhow::Result<bool> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let (spec_path, image_arg, context) = match (&args.source, &args.image) {
        (Some(_), None) => (None, args.spec.clone(), args.source.clone()),
        (Some(_), Some(_)) => anyhow::bail!("with --source, give only the image: its provenance names the spec"),
        (None, Some(i)) => (Some(PathBuf::from(&args.spec)), i.clone(), args.context.clone()),
        (None, None) => anyhow::bail!("give SPEC IMAGE, or IMAGE --source DIR to audit from the image's provenance"),
    };
    let published = super::default_transport().open(&ImageRef::parse(&image_arg)?)?;
    let mut opts = BuildOptions::default();
    let mut changed_inputs = Vec::new();
    let spec_path = match spec_path {
        Some(p) => p,
        None => {
            let dir = args.source.clone().unwrap_or_default();
            let p = provenance_of(published.as_ref(), args.provenance_key.as_deref())?;
            // Which recorded inputs the source tree no longer has as they were.
            for f in p.files.iter().chain(std::iter::once(&p.spec)) {
                let path = provenance::safe_join(&dir, &f.path)?;
                match fs_err::read(&path) {
                    Ok(b) if strata::digest::Digest::of(&b) == f.sha256 => {}
                    Ok(_) => changed_inputs.push(format!("{} (changed since the build)", f.path)),
                    Err(_) => changed_inputs.push(format!("{} (missing from {})", f.path, dir.display())),
                }
            }
            changed_inputs.sort();
            changed_inputs.dedup();
            opts.source_date_epoch = Some(p.epoch);
            provenance::safe_join(&dir, &p.spec.path)?
        }
    };
    let spec = strata::spec::load_with(&spec_path, &strata::spec::LoadOptions { context })?;
    // Opened once and held until the command ends, so `strata cache prune`
    // waits for all of it.
    let store = strata::store::Store::open(global.cache_dir())?;
    opts.fetch = fetch_options(&args.net, global)?;
    opts.verifier = args.verifier.clone();
    if opts.source_date_epoch.is_none() {
        opts.source_date_epoch = super::source_date_epoch()?;
    }
    let platforms = match &args.platform {
        Some(p) => vec![p.clone()],
        None => spec.platforms(),
    };
    let several = platforms.len() > 1;
    let mut identical = true;
    let mut json_out = Vec::new();
    for p in &platforms {
        let one = spec.for_platform(p)?;
        let result = build(&one, &store, &opts, reporter.clone())?;
        let mut rebuilt = result.image;
        rebuilt.name = format!("rebuild of {}", spec_path.display());
        let platform =
            Platform::parse(p).ok_or_else(|| anyhow::anyhow!("--platform `{p}` is not OS/ARCH (e.g. linux/arm64)"))?;
        let report =
            strata::diff::compare(&Image::open(&rebuilt, &platform)?, &Image::open(published.as_ref(), &platform)?)?;
        let verdict = strata::audit::explain(&report);
        identical &= verdict.identical;
        if args.json {
            json_out.push(
                json!({"platform": p, "verdict": verdict, "changed_inputs": changed_inputs, "comparison": report}),
            );
            continue;
        }
        let on = if several { format!("{p}: ") } else { String::new() };
        if verdict.identical {
            out(&format!("{on}identical: {} rebuilds to {} ({image_arg})", spec_path.display(), report.b_manifest))?;
        } else {
            out(&format!(
                "{on}different: the rebuild of {} is {}, {image_arg} is {}",
                spec_path.display(),
                report.a_manifest,
                report.b_manifest
            ))?;
            out(&format!("{on}first difference: {}", verdict.first_difference.as_deref().unwrap_or("?")))?;
            out(&format!("{on}likely cause: {}", verdict.likely_cause.as_deref().unwrap_or("?")))?;
            for c in &changed_inputs {
                out(&format!("{on}changed input: {c}"))?;
            }
            out(&format!("{on}full comparison: rerun with --json"))?;
        }
    }
    if args.json {
        let v = if several {
            json!({"identical": identical, "platforms": json_out})
        } else {
            let mut one = json_out.pop().unwrap_or_default();
            if let Some(o) = one.as_object_mut() {
                o.remove("platform");
            }
            one
        };
        out(&serde_json::to_string_pretty(&v)?)?;
    }
    Ok(identical)
}
