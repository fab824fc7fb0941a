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
    /// docker-archive:FILE[:NAME:TAG]; `none` (with --push) writes no local
    /// copy. Default: oci:build/NAME:TAG.
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
    /// Read layers from the layer cache in this registry repository
    /// (HOST[:PORT]/REPO) before building them. Repeatable; the configuration
    /// file's `cache_from` adds more.
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Write every layer of the build to the layer cache in this registry
    /// repository (and read from it); the configuration file's `cache_to`
    /// is the default.
    #[arg(long, value_name = "REF")]
    pub cache_to: Option<String>,
    /// After building, push the image to HOST[:PORT]/NAME[:TAG].
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Build only this platform of a spec with `platforms:` (OS/ARCH): one
    /// image instead of the index. Needed for docker-archive outputs.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Sign the image's provenance and, with --push, the pushed image (and
    /// each platform image of an index) with this private key: a file or
    /// env://VAR; the password comes from STRATA_KEY_PASSWORD (or COSIGN_PASSWORD).
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<String>,
    /// The SBOM attached to the image: SPDX 2.3 JSON or CycloneDX 1.6 JSON.
    #[arg(long, value_enum, default_value_t = SbomFormatArg::Spdx, value_name = "FORMAT")]
    pub sbom_format: SbomFormatArg,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// SBOM formats (`--sbom-format`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SbomFormatArg {
    /// SPDX 2.3 JSON (`application/spdx+json`).
    Spdx,
    /// CycloneDX 1.6 JSON (`application/vnd.cyclonedx+json`).
    Cyclonedx,
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

/// A registry cache repository: `HOST[:PORT]/REPO` (`docker://` optional;
/// a tag or digest is refused, entries are tagged by their keys).
fn cache_ref(s: &str) -> anyhow::Result<strata::oci::Reference> {
    let r = strata::oci::Reference::parse(s)?;
    if r.tag.is_some() || r.digest.is_some() {
        anyhow::bail!("registry cache `{s}`: name a repository (HOST[:PORT]/REPO) without a tag or digest; entries are tagged by their keys");
    }
    Ok(r)
}

pub fn run(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    // A bad destination should fail before the build, not after.
    let push_to = args.push.as_deref().map(strata::oci::Reference::parse).transpose()?;
    // So is a key that does not open.
    let sign_key = args.sign_key.as_deref().map(strata::sign::keys::load_private_key).transpose()?;
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    // `-o none` with --push: the image goes to the registry only, so layers
    // found in a registry cache on the same registry are never downloaded.
    let no_output = args.output.as_deref() == Some("none");
    if no_output && push_to.is_none() {
        anyhow::bail!("`-o none` writes the image nowhere\nhint: add --push HOST/NAME:TAG, or name an output");
    }
    let output = output_of(args.output.as_deref().filter(|_| !no_output), &spec.spec.name)?;
    let shown_output = if no_output { "none".to_string() } else { output.to_string() };
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
    opts.provenance_key = sign_key.clone();
    opts.sbom_format = match args.sbom_format {
        SbomFormatArg::Spdx => strata::sbom::SbomFormat::Spdx,
        SbomFormatArg::Cyclonedx => strata::sbom::SbomFormat::Cyclonedx,
    };
    opts.source_date_epoch = super::source_date_epoch()?;
    let started = std::time::Instant::now();
    let tag = spec.spec.tag.clone().unwrap_or_else(|| "latest".into());
    let mut registry_opts = args.registry.options(global)?;
    registry_opts.chunk_size = args.upload.chunk_size;
    let (cfg, _) = strata::config::load()?;
    let cache_from: Vec<strata::oci::Reference> =
        args.cache_from.iter().chain(cfg.cache_from.iter()).map(|r| cache_ref(r)).collect::<anyhow::Result<_>>()?;
    let cache_to = args.cache_to.as_deref().or(cfg.cache_to.as_deref()).map(cache_ref).transpose()?;
    if !cache_from.is_empty() || cache_to.is_some() {
        let client = strata::registry::Client::new(registry_opts.clone(), reporter.clone())?;
        // Without an output, bytes are needed only to upload to another registry.
        opts.layer_bytes = !no_output
            || push_to
                .as_ref()
                .is_some_and(|p| cache_from.iter().chain(cache_to.iter()).any(|c| c.registry != p.registry));
        opts.remote = Some(Arc::new(strata::build::remote::RegistryCache::new(client, cache_from, cache_to)));
    }
    let transport = Transport::new(registry_opts, reporter.clone());
    let sink = match no_output {
        true => None,
        false => Some(transport.sink(&output, &spec.spec.name, &tag, PushOptions::default())?),
    };
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
                Err(e @ BuildError::RemoteBlob { .. }) if attempt == 1 => {
                    eprintln!("warning: {e}; ignoring it and building again");
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
        let Some(sink) = &sink else { break (results, index) };
        let written = match &index {
            Some(i) => sink.write(&Content::of_root(i)?),
            None => sink.write(&Content::of_root(&results[0].image)?),
        };
        match written {
            Err(ImageError::CorruptBlob { digest, .. }) if attempt == 1 => {
                eprintln!("warning: cached layer {digest} was corrupt and has been removed; building again");
                continue;
            }
            r => r.with_context(|| format!("writing {shown_output}"))?,
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
        if result.remote.hits > 0 || result.remote.written > 0 {
            eprintln!(
                "registry cache: {} layers found ({} blobs downloaded, {}), {} entries written",
                result.remote.hits,
                result.remote.blobs_downloaded,
                human_bytes(result.remote.bytes_downloaded),
                result.remote.written
            );
        }
        eprintln!(
            "built {} ({} layers, {} cached, {}) in {:.1}s → {shown_output}",
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
        eprintln!("wrote the {what} {digest} → {shown_output}");
    }
    // The image just built goes to the registry as it is, with its SBOM as a
    // referrer: nothing is read back from the output.
    let pushed = match push_to {
        Some(dest) => {
            let dest_ref = dest.clone();
            let sink = strata::registry::RegistrySink::new(
                transport.client()?,
                dest,
                PushOptions { mount_from: args.upload.from.clone() },
            );
            let s = sink.write(&content)?;
            if !global.quiet {
                eprintln!("{}", describe(&s));
            }
            if let Some(k) = &sign_key {
                super::sign::sign_and_report(transport.client()?, &dest_ref, k, global.quiet)?;
            }
            Some(s)
        }
        None => None,
    };
    if args.json {
        let summary = json!({
            "name": spec.spec.name,
            "tag": tag,
            "output": shown_output,
            "manifest_digest": digest.to_string(),
            "platforms": results.iter().zip(&platforms).map(|(r, p)| json!({"platform": p, "manifest_digest": r.image.manifest.digest.to_string()})).collect::<Vec<_>>(),
            "config_digest": image.config.digest.to_string(),
            "epoch": result.epoch,
            "layers": result.layers,
            "fetch": {"cached": result.fetch.cached, "from_mirror": result.fetch.from_mirror, "downloaded": result.fetch.downloaded, "bytes": result.fetch.bytes},
            "push": pushed,
            "registry_cache": result.remote,
        });
        out(&serde_json::to_string_pretty(&summary)?)?;
    } else {
        out(&digest.to_string())?;
    }
    Ok(())
}
