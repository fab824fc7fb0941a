//! `strata diff`.

use clap::Args;
use strata::image::Image;
use strata::oci::{ImageRef, Platform};

use super::out;

/// Compare two images: config, layers, and file by file inside differing
/// layers. Exit status: 0 identical, 1 different, 2 trouble (as diff(1)).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, docker://REF.
    pub a: String,
    /// Second image.
    pub b: String,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which image of an index (OS/ARCH).
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
}

/// Runs the comparison; `Ok(true)` when identical.
pub fn run(args: DiffArgs) -> anyhow::Result<bool> {
    let transport = super::default_transport();
    let a = transport.open(&ImageRef::parse(&args.a)?)?;
    let b = transport.open(&ImageRef::parse(&args.b)?)?;
    let platform = Platform::parse(&args.platform)
        .ok_or_else(|| anyhow::anyhow!("--platform `{}` is not OS/ARCH (e.g. linux/arm64)", args.platform))?;
    let report = strata::diff::compare(&Image::open(a.as_ref(), &platform)?, &Image::open(b.as_ref(), &platform)?)?;
    if args.json {
        out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        out(strata::diff::render(&report).trim_end())?;
    }
    Ok(report.identical)
}
