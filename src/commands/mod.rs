//! Subcommands. Each parses nothing itself (clap does) and prints; the work is
//! in the library.

pub mod audit;
pub mod build;
pub mod cache;
pub mod cli;
pub mod copy;
pub mod diff;
pub mod fetch;
pub mod inspect;
pub mod lock;
pub mod progress;
pub mod pull;
pub mod push;
pub mod sign;
pub mod verifier;

use std::io::Write;

/// Writes a line to stdout; a closed pipe (`strata … | head`) or a closed
/// stdout (`>&-`) ends the command quietly with status 0: whoever closed it
/// did not want the rest.
pub fn out(line: &str) -> anyhow::Result<()> {
    let mut so = std::io::stdout().lock();
    // Lines quote inputs (paths inside images, names from archives): their
    // control characters are escaped so they cannot drive the terminal.
    let line = strata::report::printable(line);
    match writeln!(so, "{line}").and_then(|()| so.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EBADF) => {
            std::process::exit(0)
        }
        r => Ok(r?),
    }
}

/// Network options shared by the commands that fetch.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Never open a network connection; artifacts must be cached or in a mirror.
    #[arg(long)]
    pub offline: bool,
    /// A mirror directory (from `strata fetch`), searched before the network. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<std::path::PathBuf>,
    /// Rewrite a URL prefix, e.g. https://files.pythonhosted.org/=https://pypi.internal/files/. Repeatable.
    #[arg(long, value_name = "FROM=TO")]
    pub rewrite: Vec<String>,
}

/// Network settings: the configuration file (proxy, CA files, rewrites),
/// the environment (timeouts), the command line (`--ca-file`, `--rewrite`).
pub fn net_options(global: &crate::GlobalArgs, rewrites: &[String]) -> anyhow::Result<strata::net::NetOptions> {
    use anyhow::Context as _;
    let (cfg, _) = strata::config::load()?;
    let mut o = strata::net::NetOptions {
        ca_files: global.ca_file.clone(),
        proxy: cfg.proxy.clone(),
        timeouts: strata::net::Timeouts::from_env()?,
        ..Default::default()
    };
    o.ca_files.extend(cfg.ca_files.iter().cloned());
    for r in rewrites {
        let (from, to) = r.split_once('=').with_context(|| format!("--rewrite `{r}` is not FROM=TO"))?;
        o.rewrites.push((from.to_string(), to.to_string()));
    }
    o.rewrites.extend(cfg.rewrite.into_iter().map(|r| (r.from, r.to)));
    Ok(o)
}

/// Fetch options from the configuration file plus the command line.
pub fn fetch_options(net: &NetArgs, global: &crate::GlobalArgs) -> anyhow::Result<strata::fetch::FetchOptions> {
    let (cfg, _) = strata::config::load()?;
    let mut o = strata::fetch::FetchOptions { offline: net.offline || cfg.offline, ..Default::default() };
    o.net = net_options(global, &net.rewrite)?;
    let mut all = net.mirror.clone();
    all.extend(cfg.mirrors);
    for m in all {
        match strata::mirror::MirrorLocation::parse(&m).map_err(anyhow::Error::msg)? {
            strata::mirror::MirrorLocation::Dir(d) => o.mirrors.push(d),
            strata::mirror::MirrorLocation::Registry(r) => {
                let rm = open_registry_mirror(r, &o.net, global)?;
                print_mirror_warnings(&rm);
                o.registry_mirrors.push(std::sync::Arc::new(rm))
            }
        }
    }
    Ok(o)
}

/// Opens a mirror kept in a registry repository (credentials from the
/// environment and the docker/podman auth files, like every registry).
pub fn open_registry_mirror(
    r: strata::oci::Reference,
    net: &strata::net::NetOptions,
    global: &crate::GlobalArgs,
) -> anyhow::Result<strata::mirror::RegistryMirror> {
    let opts = strata::registry::ClientOptions {
        net: net.clone(),
        memory: Some(strata::registry::ClientOptions::memory_in(&global.cache_dir())),
        ..Default::default()
    };
    let client = strata::registry::Client::new(opts, std::sync::Arc::new(strata::report::NullReporter))?;
    Ok(strata::mirror::RegistryMirror::open(client, r)?)
}

/// Prints what opening (or filling) a registry mirror skipped.
pub fn print_mirror_warnings(rm: &strata::mirror::RegistryMirror) {
    for w in rm.warnings() {
        eprintln!("warning: {}: {w}", rm.describe());
    }
}

/// Mirror directories for commands that read mirrors as directories
/// (`lock`): a registry mirror is copied into the cache first
/// (`mirrors/HOST/REPO`, only what is missing there).
pub fn mirror_dirs(
    list: Vec<std::path::PathBuf>,
    net: &strata::net::NetOptions,
    store: &strata::store::Store,
    global: &crate::GlobalArgs,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for m in list {
        match strata::mirror::MirrorLocation::parse(&m).map_err(anyhow::Error::msg)? {
            strata::mirror::MirrorLocation::Dir(d) => out.push(d),
            strata::mirror::MirrorLocation::Registry(r) => {
                let dir = store.root().join("mirrors").join(r.registry.replace(':', "_")).join(&r.repository);
                let rm = open_registry_mirror(r, net, global)?;
                print_mirror_warnings(&rm);
                rm.sync_to(&dir, store)?;
                out.push(dir);
            }
        }
    }
    Ok(out)
}

/// `SOURCE_DATE_EPOCH`, when set.
pub fn source_date_epoch() -> anyhow::Result<Option<u64>> {
    use anyhow::Context as _;
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => Ok(Some(
            v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds"))?,
        )),
        _ => Ok(None),
    }
}

/// Opens images with default registry settings (credentials from the
/// environment and auth files), for commands without registry options.
pub fn default_transport() -> strata::transport::Transport {
    strata::transport::Transport::new(
        strata::registry::ClientOptions::default(),
        std::sync::Arc::new(strata::report::NullReporter),
    )
}
