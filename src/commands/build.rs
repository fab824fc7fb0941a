//! `strata build`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use strata::build::{build, BuildError, BuildOptions};
use strata::image::{Content, ImageError, Sink};
use strata::oci::ImageRef;
use strata::registry::PushOptions;
use strata::report::human_bytes;
use strata::sources::SourceError;
use strata::transport::Transport;

use super::progress::CliReporter;
use super::push::{describe, RegistryArgs, UploadArgs};
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
    /// Build only this platform of a spec with `platforms:` (OS/ARCH): one
    /// image instead of the index. Needed for docker-archive outputs.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The output a build writes to: a layout or an archive.
fn output_of(arg: Option<&str>, name: &str) -> anyhow::Result<ImageRef> {
    match arg.map(ImageRef::parse).transpose()? {
        Some(ImageRef::Registry(r)) => anyhow::bail!(
            "`docker://{r}` is not an output; use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]\nhint: to send the image to a registry, add --push {r}"
        ),
        Some(o) => Ok(o),
        None => Ok(ImageRef::Layout { dir: PathBuf::from("build").join(name), tag: None }),
    }
}

pub fn run(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    // A bad destination should fail before the build, not after.
    let push_to = args.push.as_deref().map(strata::oci::Reference::parse).transpose()?;
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    let output = output_of(args.output.as_deref(), &spec.spec.name)?;
    let mut opts = BuildOptions::default();
    // Opened once and held until the command ends, so `strata cache prune`
    // waits for all of it (the build and the writing of its output).
    let store = strata::store::Store::open(global.cache_dir())?;
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    opts.fetch = fetch_options(&args.net, global)?;
    opts.no_layer_cache = args.no_layer_cache;
    opts.verifier = args.verifier.clone();
    opts.unlocked = args.unlocked;
    opts.source_date_epoch = super::source_date_epoch()?;
    let started = std::time::Instant::now();
    let tag = spec.spec.tag.clone().unwrap_or_else(|| "latest".into());
    let mut registry_opts = args.registry.options(global)?;
    registry_opts.chunk_size = args.upload.chunk_size;
    let transport = Transport::new(registry_opts, reporter.clone());
    let sink = transport.sink(&output, &spec.spec.name, &tag, PushOptions::default())?;
    // One image per platform; a spec with `platforms:` gives an index of
    // them, unless `--platform` picks one.
    let platforms = match &args.platform {
        Some(p) => vec![p.clone()],
        None => spec.platforms(),
    };
    let as_index = spec.is_multi_platform() && args.platform.is_none();
    if as_index && platforms.len() > 1 && matches!(output, ImageRef::DockerArchive { .. }) {
        anyhow::bail!(
            "a docker-archive holds one image, and {} builds for {}\nhint: choose one with --platform (e.g. --platform {}), or write an index with -o oci:DIR or -o oci-archive:FILE",
            spec.spec.name,
            platforms.join(", "),
            platforms[0]
        );
    }
    let mut specs = Vec::new();
    for p in &platforms {
        specs.push(spec.for_platform(p)?);
    }
    // A blob that rotted in the cache is found when it is read (and removed
    // then); the build runs once more, fetching or rebuilding what it lost.
    let mut attempt = 0;
    let (results, index) = 'again: loop {
        attempt += 1;
        let mut results = Vec::new();
        for one in &specs {
            match build(one, &store, &opts, reporter.clone()) {
                Err(BuildError::Source { source: SourceError::CorruptCache { what, .. }, .. }) if attempt == 1 => {
                    eprintln!("warning: {what}: the cached copy was corrupt and has been removed; building again");
                    continue 'again;
                }
                r => results.push(r?),
            }
        }
        let index = match as_index && args.platform.is_none() && !matches!(output, ImageRef::DockerArchive { .. }) {
            true => Some(strata::image::BuiltIndex::new(
                &format!("build of {}", spec.path.display()),
                results.iter().map(|r| r.image.clone()).collect(),
            )?),
            false => None,
        };
        let written = match &index {
            Some(i) => sink.write(&Content::of_root(i)?),
            None => sink.write(&Content::of_root(&results[0].image)?),
        };
        match written {
            Err(ImageError::CorruptBlob { digest, .. }) if attempt == 1 => {
                eprintln!("warning: cached layer {digest} was corrupt and has been removed; building again");
                continue;
            }
            r => r.with_context(|| format!("writing {output}"))?,
        };
        break (results, index);
    };
    let result = &results[0];
    let image = &result.image;
    let content = match &index {
        Some(i) => Content::of_root(i)?,
        None => Content::of_root(image)?,
    };
    let digest = index.as_ref().map(|i| i.index.digest).unwrap_or(image.manifest.digest);
    if !global.quiet && !spec.is_multi_platform() {
        let total: u64 = result.layers.iter().map(|l| l.blob.size).sum();
        let cached = result.layers.iter().filter(|l| l.cached).count();
        eprintln!(
            "built {} ({} layers, {} cached, {}) in {:.1}s → {output}",
            spec.spec.name,
            result.layers.len(),
            cached,
            human_bytes(total),
            started.elapsed().as_secs_f64(),
        );
    } else if !global.quiet {
        for (r, p) in results.iter().zip(&platforms) {
            let total: u64 = r.layers.iter().map(|l| l.blob.size).sum();
            let cached = r.layers.iter().filter(|l| l.cached).count();
            eprintln!(
                "built {} for {p} ({} layers, {} cached, {}) in {:.1}s: {}",
                spec.spec.name,
                r.layers.len(),
                cached,
                human_bytes(total),
                started.elapsed().as_secs_f64(),
                r.image.manifest.digest,
            );
        }
        let what = if index.is_some() { "index" } else { "image" };
        eprintln!("wrote the {what} {digest} → {output}");
    }
    // The image just built goes to the registry as it is, with its SBOM as a
    // referrer: nothing is read back from the output.
    let pushed = match push_to {
        Some(dest) => {
            let sink = strata::registry::RegistrySink::new(
                transport.client()?,
                dest,
                PushOptions { mount_from: args.upload.from.clone() },
            );
            let s = sink.write(&content)?;
            if !global.quiet {
                eprintln!("{}", describe(&s));
            }
            Some(s)
        }
        None => None,
    };
    if args.json {
        let summary = json!({
            "name": spec.spec.name,
            "tag": tag,
            "output": output.to_string(),
            "manifest_digest": digest.to_string(),
            "platforms": results.iter().zip(&platforms).map(|(r, p)| json!({"platform": p, "manifest_digest": r.image.manifest.digest.to_string()})).collect::<Vec<_>>(),
            "config_digest": image.config.digest.to_string(),
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
