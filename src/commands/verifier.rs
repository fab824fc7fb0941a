//! `strata verifier`: the strata-verify binaries built into strata.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use strata::sources::verifier::{Embedded, DIST_MANIFEST, EMBEDDED};

use super::out;

/// Show the strata-verify binaries built into strata (the entrypoint of images
/// with a `gpu:` section, pinned by their locks; one per image platform) and
/// where they came from, or write one out.
#[derive(Debug, Args)]
pub struct VerifierArgs {
    /// Write the binary for `--platform` to this file (mode 0755), e.g. to compare it with a rebuild.
    #[arg(long, value_name = "PATH", requires = "platform")]
    pub write: Option<PathBuf>,
    /// The image platform (linux/amd64 or linux/arm64); without it, every one strata carries is shown.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print JSON (an object with `--platform`, else an array of them).
    #[arg(long)]
    pub json: bool,
}

fn platforms() -> String {
    EMBEDDED.iter().map(|e| e.platform).collect::<Vec<_>>().join(", ")
}

pub fn run(args: VerifierArgs) -> anyhow::Result<()> {
    let chosen: Vec<&'static Embedded> = match &args.platform {
        Some(p) => vec![Embedded::for_platform(p).with_context(|| {
            format!("strata carries no strata-verify for {p}\nhint: it carries one for {}", platforms())
        })?],
        None => EMBEDDED.iter().collect(),
    };
    let manifest: toml::Table = toml::from_str(DIST_MANIFEST).context("verifier/dist/manifest.toml")?;
    let field = |k: &str| manifest.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    // The linker of one binary: its own entry, else the manifest's (linux/amd64) one.
    let linker = |e: &Embedded| {
        manifest
            .get("binary")
            .and_then(|b| b.as_array())
            .and_then(|bs| bs.iter().find(|b| b.get("target").and_then(|t| t.as_str()) == Some(e.target)))
            .and_then(|b| b.get("linker"))
            .and_then(|l| l.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| field("linker"))
    };
    if let (Some(path), [e]) = (&args.write, chosen.as_slice()) {
        strata::atomic::atomic_write(path, e.bytes)?;
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    if args.json {
        let all: Vec<serde_json::Value> = chosen
            .iter()
            .map(|e| {
                serde_json::json!({
                    "platform": e.platform,
                    "target": e.target,
                    "sha256": e.sha256().to_string(),
                    "size": e.bytes.len(),
                    "toolchain": field("toolchain"),
                    "linker": linker(e),
                    "sources": field("sources"),
                    "written": args.write.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        let v = if args.platform.is_some() { all[0].clone() } else { serde_json::Value::Array(all) };
        return out(&v.to_string());
    }
    for (i, e) in chosen.iter().enumerate() {
        if i > 0 {
            out("")?;
        }
        out(&format!("platform   {} ({})", e.platform, e.target))?;
        out(&format!("size       {} bytes", e.bytes.len()))?;
        out(&format!("toolchain  {} (verifier/build-reproducible.sh; linked by {})", field("toolchain"), linker(e)))?;
        out(&format!("sources    {} (verifier/dist/manifest.toml)", field("sources")))?;
        if let Some(p) = &args.write {
            out(&format!("written    {}", p.display()))?;
        }
        out(&e.sha256().to_string())?;
    }
    Ok(())
}
