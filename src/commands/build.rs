//! `strata build`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use strata::build::{build, BuildError, BuildOptions};
use strata::image::layout::{write, Output, OutputError};
use strata::report::human_bytes;
use strata::sources::SourceError;

use super::progress::CliReporter;
use super::push::{push_source, RegistryArgs, UploadArgs};
use super::{fetch_options, out, NetArgs};
use crate::GlobalArgs;

/// Build an image from a spec.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image spec (YAML).
    pub spec: PathBuf,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Where to write the image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or
    /// docker-archive:FILE[:NAME:TAG]. Default: oci:build/NAME:TAG.
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: Option<String>,
    /// Print a JSON summary on stdout instead of the digest.
    #[arg(long)]
    pub json: bool,
    /// Threads for compression and for writing up to 4 layers at once
    /// (default: the number of cores); the bytes are the same for any value.
    #[arg(long, env = "STRATA_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub net: NetArgs,
    /// The strata-verify binary added to images with a `gpu:` section.
    /// Default: strata-verify next to this executable.
    #[arg(long, env = "STRATA_VERIFIER", value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    /// Build even when the lock is missing or stale (an experiment: the image's
    /// annotations say so, and Debian packages are resolved against the live archive).
    #[arg(long)]
    pub unlocked: bool,
    /// Rebuild every layer even when the layer cache has it.
    #[arg(long)]
    pub no_layer_cache: bool,
    /// After building, push the image to HOST[:PORT]/NAME[:TAG].
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    // A bad destination should fail before the build, not after.
    let push_to = args.push.as_deref().map(strata::registry::Reference::parse).transpose()?;
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let output = match &args.output {
        Some(o) => Output::parse(o)?,
        None => Output::OciDir { dir: PathBuf::from("build").join(&spec.spec.name), tag: None },
    };
    let mut opts = BuildOptions { cache: global.cache_dir(), ..BuildOptions::default() };
    // Held until the command ends, so `strata cache prune` waits for all of it
    // (the build and the writing of its output), not only for the build.
    let _cache = strata::store::Store::open(&opts.cache)?;
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    opts.fetch = fetch_options(&args.net)?;
    opts.no_layer_cache = args.no_layer_cache;
    opts.verifier = args.verifier.clone();
    opts.unlocked = args.unlocked;
    opts.source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds"))?,
        ),
        _ => None,
    };
    let started = std::time::Instant::now();
    let tag = spec.spec.tag.clone().unwrap_or_else(|| "latest".into());
    // A blob that rotted in the cache is found when it is read (and removed
    // then); the build runs once more, fetching or rebuilding what it lost.
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let result = match build(&spec, &opts, reporter.clone()) {
            Err(BuildError::Source { source: SourceError::CorruptCache { what, .. }, .. }) if attempt == 1 => {
                eprintln!("warning: {what}: the cached copy was corrupt and has been removed; building again");
                continue;
            }
            r => r?,
        };
        let doc =
            strata::sbom::spdx(&spec.spec.name, &tag, &result.image.manifest.digest, result.epoch, &result.packages);
        let doc = strata::image::canonical::to_vec(&doc)?;
        let sbom = strata::image::layout::sbom_attachment(&result.image, &doc, result.epoch)?;
        let store = strata::store::Store::open(&opts.cache)?;
        match write(&result.image, &store, &output, &spec.spec.name, &tag, Some(&sbom)) {
            Err(OutputError::CorruptBlob { digest, .. }) if attempt == 1 => {
                eprintln!("warning: cached layer {digest} was corrupt and has been removed; building again");
                continue;
            }
            r => r.with_context(|| format!("writing {}", output.display()))?,
        }
        break result;
    };
    let digest = result.image.manifest.digest;
    if !global.quiet {
        let total: u64 = result.layers.iter().map(|l| l.blob.size).sum();
        let cached = result.layers.iter().filter(|l| l.cached).count();
        eprintln!(
            "built {} ({} layers, {} cached, {}) in {:.1}s → {}",
            spec.spec.name,
            result.layers.len(),
            cached,
            human_bytes(total),
            started.elapsed().as_secs_f64(),
            output.display()
        );
    }
    let pushed = match &push_to {
        Some(dest) => {
            // From the layout or archive just written, so its SBOM goes along
            // as a referrer; docker-archives keep theirs beside the file.
            let src: Box<dyn strata::image::read::ImageSource> = match &output {
                Output::OciDir { dir, tag: t } => {
                    strata::image::read::open(&format!("oci:{}:{}", dir.display(), t.as_deref().unwrap_or(&tag)))?
                }
                Output::OciArchive { file, tag: t } => strata::image::read::open(&format!(
                    "oci-archive:{}:{}",
                    file.display(),
                    t.as_deref().unwrap_or(&tag)
                ))?,
                Output::DockerArchive { .. } => Box::new(strata::image::read::BuiltSource {
                    image: result.image.clone(),
                    store: strata::store::Store::open(&opts.cache)?,
                    name: output.display(),
                }),
            };
            Some(push_source(src.as_ref(), dest, &args.upload, &args.registry, global)?)
        }
        None => None,
    };
    if args.json {
        let summary = json!({
            "name": spec.spec.name,
            "tag": tag,
            "output": output.display(),
            "manifest_digest": digest.to_string(),
            "config_digest": result.image.config.digest.to_string(),
            "epoch": result.epoch,
            "layers": result.layers,
            "fetch": {"cached": result.fetch.cached, "from_mirror": result.fetch.from_mirror, "downloaded": result.fetch.downloaded, "bytes": result.fetch.bytes},
            "push": pushed,
        });
        out(&serde_json::to_string_pretty(&summary)?)?;
    } else {
        out(&digest.to_string())?;
    }
    Ok(())
}
