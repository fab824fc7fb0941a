//! `strata verifier`: the strata-verify binary built into strata.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use strata::sources::verifier::{Embedded, DIST_MANIFEST, EMBEDDED};

use super::out;

/// Show the strata-verify built into strata (the entrypoint of images with a
/// `gpu:` section, pinned by their locks) and where it came from, or write it out.
#[derive(Debug, Args)]
pub struct VerifierArgs {
    /// Write the binary to this file (mode 0755), e.g. to compare it with a rebuild.
    #[arg(long, value_name = "PATH")]
    pub write: Option<PathBuf>,
    /// The image platform.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VerifierArgs) -> anyhow::Result<()> {
    let e = Embedded::for_platform(&args.platform).with_context(|| {
        format!(
            "strata carries no strata-verify for {}\nhint: it carries one for {}",
            args.platform,
            EMBEDDED.iter().map(|e| e.platform).collect::<Vec<_>>().join(", ")
        )
    })?;
    let manifest: toml::Table = toml::from_str(DIST_MANIFEST).context("verifier/dist/manifest.toml")?;
    let field = |k: &str| manifest.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    if let Some(path) = &args.write {
        strata::atomic::atomic_write(path, e.bytes)?;
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    let sha256 = e.sha256();
    if args.json {
        let v = serde_json::json!({
            "platform": e.platform,
            "target": e.target,
            "sha256": sha256.to_string(),
            "size": e.bytes.len(),
            "toolchain": field("toolchain"),
            "linker": field("linker"),
            "sources": field("sources"),
            "written": args.write.as_ref().map(|p| p.display().to_string()),
        });
        return out(&v.to_string());
    }
    out(&format!("platform   {} ({})", e.platform, e.target))?;
    out(&format!("size       {} bytes", e.bytes.len()))?;
    out(&format!("toolchain  {} (verifier/build-reproducible.sh; linked by {})", field("toolchain"), field("linker")))?;
    out(&format!("sources    {} (verifier/dist/manifest.toml)", field("sources")))?;
    if let Some(p) = &args.write {
        out(&format!("written    {}", p.display()))?;
    }
    out(&sha256.to_string())
}
