//! `strata lock`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use strata::lock::{check, display_path, load_for, relock_platforms, RelockOptions, Stale, VerifierCheck};
use strata::sources::verifier::Verifier;

use super::progress::CliReporter;
use super::{out, NetArgs};
use crate::GlobalArgs;

/// Resolve the spec's package names into pins (Debian packages into SPEC.lock,
/// Python requirements into each pylock.toml, with uv), keeping every pin the
/// spec still allows; or, with --check, say whether the lock is current.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The image spec (YAML). The lock is written beside it with the extension `.lock`.
    pub spec: PathBuf,
    /// The build context: files the spec names (includes, `source:`,
    /// `path:`, locks) must be inside it. Default: the spec's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Check, offline, that the lock matches the spec's inputs and its pins are
    /// self-consistent; resolve nothing. Exit 0 current, 1 stale (each change named), 2 error.
    #[arg(long, conflicts_with_all = ["upgrade", "upgrade_package"])]
    pub check: bool,
    /// Resolve everything afresh, ignoring the current pins.
    #[arg(long, conflicts_with = "upgrade_package")]
    pub upgrade: bool,
    /// Move this package (Debian or Python) to the newest version the spec
    /// allows; every other pin stays. Repeatable.
    #[arg(long = "upgrade-package", value_name = "NAME")]
    pub upgrade_package: Vec<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The strata-verify binary to pin for specs with a `gpu:` section.
    /// Default: the one built into strata (`strata verifier`).
    #[arg(long, env = "STRATA_VERIFIER", value_name = "PATH")]
    pub verifier: Option<PathBuf>,
    /// Seconds to wait for an archive to accept a connection.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub net: NetArgs,
}

pub fn run(args: LockArgs, global: &GlobalArgs) -> ExitCode {
    let error_code = if args.check { 2 } else { 1 };
    let json = args.json;
    let spec_shown = display_path(&args.spec);
    match each_platform(&args, global) {
        Ok(code) => code,
        Err(e) => {
            if json {
                let v = serde_json::json!({"spec": spec_shown, "status": "error", "error": crate::render_error(&e)});
                let _ = out(&v.to_string());
            }
            eprintln!("error: {}", crate::render_error(&e));
            ExitCode::from(error_code)
        }
    }
}

/// Locks (or checks) the spec, or each platform of a multi-platform spec
/// into its own `SPEC.<os>-<arch>.lock`; the worst exit code wins.
fn each_platform(args: &LockArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let spec = strata::spec::load_with(&args.spec, &strata::spec::LoadOptions { context: args.context.clone() })?;
    if !spec.is_multi_platform() {
        return if args.check { check_cmd(args, global, spec) } else { lock_cmd(args, global, vec![spec]) };
    }
    let mut specs = Vec::new();
    for p in spec.platforms() {
        specs.push(spec.for_platform(&p)?);
    }
    if !args.check {
        // Every platform at once: a `python:` entry's platforms prefer each other's versions.
        return lock_cmd(args, global, specs);
    }
    let mut worst = 0u8;
    for one in specs {
        if check_cmd(args, global, one)? != ExitCode::SUCCESS {
            worst = 1;
        }
    }
    Ok(ExitCode::from(worst))
}

/// `strata lock --check`: 0 current, 1 stale.
fn check_cmd(args: &LockArgs, global: &GlobalArgs, spec: strata::spec::LoadedSpec) -> anyhow::Result<ExitCode> {
    strata::lock::check_exclude_newer(&spec)?;
    let lock = load_for(&spec)?;
    let verifier = Verifier::locate(&spec, args.verifier.as_deref(), None)?;
    let changes = check(&spec, lock.as_ref(), VerifierCheck::Expect(verifier.as_ref()))?;
    let path = spec.lock_path();
    let shown = display_path(&spec.path);
    let status = if changes.is_empty() { "current" } else { "stale" };
    if args.json {
        let v = serde_json::json!({
            "spec": shown,
            "lock": display_path(&path),
            "status": status,
            "changes": changes.iter().map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["message"] = c.to_string().into();
                v
            }).collect::<Vec<_>>(),
        });
        out(&v.to_string())?;
    }
    if changes.is_empty() {
        if !global.quiet && !args.json {
            if lock.is_none() {
                eprintln!("{shown} pins nothing: no lock needed");
            } else {
                eprintln!("{} is current", display_path(&path));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json || !global.quiet {
        eprintln!("{}", Stale { lock: path, spec: shown, changes, build: false });
    }
    Ok(ExitCode::from(1))
}

fn lock_cmd(args: &LockArgs, global: &GlobalArgs, specs: Vec<strata::spec::LoadedSpec>) -> anyhow::Result<ExitCode> {
    let reporter = Arc::new(CliReporter::new(global.quiet));
    let started = std::time::Instant::now();
    let mut net = super::net_options(global, &args.net.rewrite)?;
    net.timeouts.connect = std::time::Duration::from_secs(args.timeout.max(1));
    let (cfg, _) = strata::config::load().map_err(anyhow::Error::msg)?;
    let mut mirrors = args.net.mirror.clone();
    mirrors.extend(cfg.mirrors);
    // Opened once and held until the command ends, so `strata cache prune` waits.
    let store = strata::store::Store::open(global.cache_dir())?;
    let mirrors = super::mirror_dirs(mirrors, &net, &store, global)?;
    let opts = RelockOptions {
        net,
        verifier: args.verifier.clone(),
        upgrade: args.upgrade,
        upgrade_packages: args.upgrade_package.clone(),
        offline: args.net.offline || cfg.offline,
        mirrors,
    };
    let all = relock_platforms(&specs, &store, &opts, reporter)?;
    for (spec, r) in specs.iter().zip(all) {
        report(args, global, spec, &r, started)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what `strata lock` did for one lock file.
fn report(
    args: &LockArgs,
    global: &GlobalArgs,
    spec: &strata::spec::LoadedSpec,
    r: &strata::lock::Relocked,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let shown_lock = display_path(&r.path);
    if args.json {
        let v = serde_json::json!({
            "spec": display_path(&spec.path),
            "lock": shown_lock,
            "status": if r.unchanged { "unchanged" } else { "written" },
            "resolved": r.resolved,
            "kept": r.kept,
            "pins": r.pins,
            "pylocks": r.pylocks.iter().map(|p| serde_json::json!({
                "layer": p.layer,
                "pylock": p.pylock,
                "sha256": p.sha256.to_string(),
                "wheels": p.wheels,
                "resolved": p.resolved,
                "changed": p.changed,
            })).collect::<Vec<_>>(),
            "notes": r.lock.debs.iter().map(|(k, d)| (k.clone(), d.notes.clone())).collect::<std::collections::BTreeMap<_, _>>(),
            "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        });
        out(&v.to_string())?;
        return Ok(());
    }
    if global.quiet {
        return Ok(());
    }
    for p in &r.pylocks {
        let how = match (p.requirements, p.resolved, p.changed) {
            (false, _, _) => "recorded (brought, not resolved)",
            (true, false, _) => "kept (its inputs did not change)",
            (true, true, true) => "resolved and rewritten",
            (true, true, false) => "resolved, unchanged",
        };
        eprintln!("{}: {how} ({} wheels, {})", p.pylock, p.wheels, p.sha256);
    }
    // Notes of the entries resolved now (a kept entry's notes did not change).
    for (k, d) in r.lock.debs.iter().filter(|(k, _)| r.resolved.contains(&format!("debs `{k}`"))) {
        for n in &d.notes {
            eprintln!("note: layer `{k}`: {n}");
        }
    }
    for c in &r.pins {
        eprintln!("{} `{}`: {c}", c.section, c.layer);
    }
    let pkgs: usize = r.lock.debs.values().map(|d| d.packages.len()).sum();
    eprintln!(
        "{} {shown_lock} ({} debs layer(s), {pkgs} packages; {}; {} pins kept, {} changed) in {:.1}s",
        if r.unchanged { "unchanged" } else { "wrote" },
        r.lock.debs.len(),
        if r.resolved.is_empty() {
            "nothing resolved".to_string()
        } else {
            format!("resolved {}", r.resolved.join(", "))
        },
        r.kept,
        r.pins.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
