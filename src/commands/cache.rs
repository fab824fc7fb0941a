//! `strata cache`: what the cache holds, and pruning it.

use clap::{Args, Subcommand};
use strata::cache::{parse_age, prune, usage, Keep};
use strata::report::human_bytes;

use super::out;
use crate::GlobalArgs;

/// Show or prune the cache (artifacts, built layers, the layer cache).
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// How many blobs and bytes the cache holds.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs no build has used for a while (default: 30 days), the
    /// layer cache entries that named them, and temporary files left by
    /// killed processes. Waits for running builds that use the cache.
    Prune {
        /// Keep blobs used within this age: e.g. 30d, 12h, 2w.
        #[arg(long, value_name = "AGE", default_value = "30d", value_parser = parse_age, conflicts_with = "all")]
        unused_for: std::time::Duration,
        /// Remove everything.
        #[arg(long)]
        all: bool,
        /// Report what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn age_words(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn run(args: CacheArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let root = global.cache_dir();
    let now = std::time::SystemTime::now();
    match args.command {
        CacheCommand::Dir => out(&root.display().to_string()),
        CacheCommand::Info { json } => {
            let store = strata::store::Store::open(&root)?;
            let u = usage(&store, now)?;
            if json {
                return out(&serde_json::to_string_pretty(&u)?);
            }
            out(&format!("cache       {}", u.root.display()))?;
            out(&format!(
                "blobs       {} ({}){}",
                u.blobs,
                human_bytes(u.blob_bytes),
                if u.linked_bytes > 0 {
                    format!(", {} of it also hard-linked from image layouts", human_bytes(u.linked_bytes))
                } else {
                    String::new()
                }
            ))?;
            out(&format!("layers      {} layer cache entries", u.layer_entries))?;
            out(&format!("temporary   {} entries ({})", u.tmp_entries, human_bytes(u.tmp_bytes)))?;
            if let Some(s) = u.oldest_use_secs {
                out(&format!("oldest use  {} ago", age_words(s)))?;
            }
            Ok(())
        }
        CacheCommand::Prune { unused_for, all, dry_run, json } => {
            let quiet = global.quiet;
            let store = strata::store::Store::open_exclusive(&root, &mut |r| {
                if !quiet {
                    eprintln!("waiting for the strata processes using {} to finish", r.display());
                }
            })?;
            let keep = if all { Keep::Nothing } else { Keep::UsedWithin(unused_for) };
            let r = prune(&store, keep, dry_run, now)?;
            if json {
                return out(&serde_json::to_string_pretty(&r)?);
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            out(&format!(
                "{verb} {} blobs ({}), {} layer cache entries, {} temporary entries ({})",
                r.removed_blobs,
                human_bytes(r.removed_bytes),
                r.removed_layer_entries,
                r.removed_tmp_entries,
                human_bytes(r.removed_tmp_bytes)
            ))?;
            if !all {
                out(&format!(
                    "kept {} blobs ({}) used in the last {} (--unused-for AGE to change, --all for everything)",
                    r.kept_blobs,
                    human_bytes(r.kept_bytes),
                    age_words(unused_for.as_secs())
                ))?;
            }
            if r.still_linked_bytes > 0 && !quiet {
                eprintln!(
                    "note: {} of it is also hard-linked from image layouts and stays on disk until those are deleted",
                    human_bytes(r.still_linked_bytes)
                );
            }
            Ok(())
        }
    }
}
