//! `strata diff`.

use clap::Args;

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
}

/// Runs the comparison; `Ok(true)` when identical.
pub fn run(args: DiffArgs) -> anyhow::Result<bool> {
    let a = strata::image::read::open(&args.a)?;
    let b = strata::image::read::open(&args.b)?;
    let report = strata::diff::compare(a.as_ref(), b.as_ref())?;
    if args.json {
        out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        out(strata::diff::render(&report).trim_end())?;
    }
    Ok(report.identical)
}
