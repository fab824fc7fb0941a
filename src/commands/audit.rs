//! `strata audit`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use strata::build::{build, BuildOptions};
use strata::image::Image;
use strata::oci::{ImageRef, Platform};

use super::progress::CliReporter;
use super::{fetch_options, out, NetArgs};
use crate::GlobalArgs;

/// Rebuild an image from its spec and compare it with a published image.
/// Exit status: 0 identical, 1 different, 2 trouble.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The image spec.
    pub spec: PathBuf,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The published image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE.
    pub image: String,
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

/// Runs the audit; `Ok(true)` when identical.
pub fn run(args: AuditArgs, global: &GlobalArgs) -> anyhow::Result<bool> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let mut opts = BuildOptions::default();
    // Opened once and held until the command ends, so `strata cache prune`
    // waits for all of it.
    let store = strata::store::Store::open(global.cache_dir())?;
    opts.fetch = fetch_options(&args.net, global)?;
    opts.verifier = args.verifier.clone();
    opts.source_date_epoch = super::source_date_epoch()?;
    let published = super::default_transport().open(&ImageRef::parse(&args.image)?)?;
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
        rebuilt.name = format!("rebuild of {}", args.spec.display());
        let platform =
            Platform::parse(p).ok_or_else(|| anyhow::anyhow!("--platform `{p}` is not OS/ARCH (e.g. linux/arm64)"))?;
        let report =
            strata::diff::compare(&Image::open(&rebuilt, &platform)?, &Image::open(published.as_ref(), &platform)?)?;
        let verdict = strata::audit::explain(&report);
        identical &= verdict.identical;
        if args.json {
            json_out.push(json!({"platform": p, "verdict": verdict, "comparison": report}));
            continue;
        }
        let on = if several { format!("{p}: ") } else { String::new() };
        if verdict.identical {
            out(&format!("{on}identical: {} rebuilds to {} ({})", args.spec.display(), report.b_manifest, args.image))?;
        } else {
            out(&format!(
                "{on}different: the rebuild of {} is {}, {} is {}",
                args.spec.display(),
                report.a_manifest,
                args.image,
                report.b_manifest
            ))?;
            out(&format!("{on}first difference: {}", verdict.first_difference.as_deref().unwrap_or("?")))?;
            out(&format!("{on}likely cause: {}", verdict.likely_cause.as_deref().unwrap_or("?")))?;
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
