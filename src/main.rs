//! The `strata` command line. It parses arguments and prints; the work is in
//! the library.
// No `unsafe` in the binary but the allocator wrapper of `oom` (a global
// allocator is an unsafe trait); the library forbids it outright.
#![deny(unsafe_code)]

/// `eprintln!` for this binary: a closed or broken stderr is not a reason
/// to panic (std's `eprintln!` panics when the write fails), so the message
/// is dropped instead and the command goes on to its exit status.
macro_rules! eprintln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Strata: a declarative, reproducible OCI image compiler. No daemon, no root, no RUN.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Cache directory (artifacts, layers). Default: $STRATA_CACHE or ~/.cache/strata.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Show what happens in detail (-v: info spans, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also trust the CA certificates in this PEM file, for every download
    /// (artifacts, Debian indexes, registries). Repeatable.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// How to show progress: bars on a terminal (auto), bars (tty), plain
    /// lines with a heartbeat at least every 10 s for CI logs (plain), or none.
    #[arg(long, global = true, env = "STRATA_PROGRESS", value_enum, default_value_t = commands::progress::ProgressMode::Auto, value_name = "WHEN")]
    pub progress: commands::progress::ProgressMode,
}

impl GlobalArgs {
    /// The cache root.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(strata::store::Store::default_root)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(commands::build::BuildArgs),
    Inspect(commands::inspect::InspectArgs),
    Fetch(commands::fetch::FetchArgs),
    Diff(commands::diff::DiffArgs),
    Audit(commands::audit::AuditArgs),
    Lock(commands::lock::LockArgs),
    Push(commands::push::PushArgs),
    Pull(commands::pull::PullArgs),
    Copy(commands::copy::CopyArgs),
    Cache(commands::cache::CacheArgs),
    Verifier(commands::verifier::VerifierArgs),
    Key(commands::sign::KeyArgs),
    Sign(commands::sign::SignArgs),
    Verify(commands::sign::VerifyArgs),
    /// Print the JSON Schema of image specs (or, with --layer, of layer files),
    /// for editors that validate YAML.
    Schema {
        /// The layer-file schema instead of the image-spec schema.
        #[arg(long)]
        layer: bool,
    },
    Completions(commands::cli::CompletionsArgs),
    Man(commands::cli::ManArgs),
}

/// The command-line definition, for completions and man pages.
pub fn cli_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[global_allocator]
static ALLOC: strata_sys::ExitOnOom = strata_sys::ExitOnOom;

fn main() -> ExitCode {
    strata_sys::install_oom_panic_hook();
    let cli = Cli::parse();
    commands::progress::set_mode(cli.global.progress);
    init_tracing(cli.global.verbose);
    let result = match cli.command {
        Command::Build(a) => commands::build::run(a, &cli.global),
        Command::Fetch(a) => commands::fetch::run(a, &cli.global),
        Command::Diff(a) => return tri_state(commands::diff::run(a)),
        Command::Audit(a) => return tri_state(commands::audit::run(a, &cli.global)),
        Command::Lock(a) => return commands::lock::run(a, &cli.global),
        Command::Inspect(a) => commands::inspect::run(a, &cli.global),
        Command::Push(a) => commands::push::run(a, &cli.global),
        Command::Pull(a) => commands::pull::run(a, &cli.global),
        Command::Copy(a) => commands::copy::run(a, &cli.global),
        Command::Cache(a) => commands::cache::run(a, &cli.global),
        Command::Verifier(a) => commands::verifier::run(a),
        Command::Key(a) => commands::sign::key(a),
        Command::Sign(a) => commands::sign::sign(a, &cli.global),
        // 0 verified, 1 anything else (not signed, or could not be checked).
        Command::Verify(a) => match commands::sign::verify(a, &cli.global) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Schema { layer } => {
            let v = if layer { strata::spec::layer_schema() } else { strata::spec::image_schema() };
            serde_json::to_string_pretty(&v).map_err(anyhow::Error::from).and_then(|s| commands::out(&s))
        }
        Command::Completions(a) => commands::cli::completions(a),
        Command::Man(a) => commands::cli::man(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(1)
        }
    }
}

/// diff(1)-style exit status: 0 same, 1 different, 2 trouble.
fn tri_state(r: anyhow::Result<bool>) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause shown once (many errors already
/// include their cause's text), then the first hint an error in the chain
/// offers.
pub(crate) fn render_error(e: &anyhow::Error) -> String {
    // Errors quote inputs (member names, server messages): escape control
    // characters so they cannot drive the terminal.
    strata::report::printable(&render_chain(e)).into_owned()
}

fn render_chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str("\n  caused by: ");
            s.push_str(&c);
        }
    }
    if let Some(h) = e.chain().find_map(hint_of) {
        if !s.contains(&h) {
            s.push_str("\nhint: ");
            s.push_str(&h);
        }
    }
    s
}

/// The hint of an error of a type that offers one.
fn hint_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use strata::error::Hint;
    macro_rules! try_hint {
        ($($t:ty),*) => {$(
            if let Some(x) = e.downcast_ref::<$t>() {
                return x.hint();
            }
        )*};
    }
    try_hint!(
        strata::build::BuildError,
        strata::lock::Error,
        strata::sources::SourceError,
        strata::sources::deb::error::DebError,
        strata::fetch::FetchError,
        strata::image::ImageError,
        strata::net::NetError
    );
    None
}

/// Logs of tracing spans: `-v` (info), `-vv` (debug), or any filter in
/// `STRATA_LOG` (e.g. `STRATA_LOG=strata::fetch=debug`), which wins over
/// `-v`. Plain text unless stderr is a terminal and NO_COLOR is not set.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 if std::env::var_os("STRATA_LOG").is_none_or(|v| v.is_empty()) => return,
        0 | 1 => "strata=info",
        _ => "strata=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !commands::progress::no_color();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a terminal: logs written to files or pipes stay plain text.
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
}
