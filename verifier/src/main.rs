//! `strata-verify [OPTIONS] [-- COMMAND...]`: the thin binary. Parses the
//! command line, runs the checks, prints the report, then either stops
//! (strict mode and a failure) or becomes COMMAND through `execve`.
//! `strata-verify metrics` serves GPU metrics instead.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::exit;
use std::sync::Arc;
use std::time::Instant;
use strata_verify::checks;
use strata_verify::policy::{self, Action, Mode};
use strata_verify::report::{Check, Report, Status};
use strata_verify::{driver, handover, json, metrics, trace};

fn main() {
    let started = Instant::now();
    // Descriptors the command should inherit: those we were started with.
    let inherited = handover::open_fds();
    // A panic (a bug, or a library misbehaving under us) is caught and
    // reported as a failed check in words, so the default hook's message
    // would only be noise.
    std::panic::set_hook(Box::new(|_| {}));

    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let opts = match policy::parse(&args, &env) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("strata-verify: {e}");
            exit(2);
        }
    };
    match opts.action {
        Action::Help => {
            print!("{}", policy::USAGE);
            exit(0);
        }
        Action::Version => {
            println!("strata-verify {}", env!("CARGO_PKG_VERSION"));
            exit(0);
        }
        Action::Metrics { listen } => serve_metrics(&listen),
        Action::Run => {}
    }
    if env
        .get("STRATA_VERIFY_TRACE")
        .map(|v| !matches!(v.as_str(), "" | "0"))
        .unwrap_or(false)
    {
        trace::enable(started);
    }

    if opts.policy.mode == Mode::Off {
        run_command(&opts.command, "off", &inherited);
    }

    // One hardware work queue per context instead of the driver's default
    // eight: the checks need no more, and the context is made and torn down
    // faster (docs/verifier.md, "Start-up time"). A value the caller set is
    // kept; the command gets the environment it was given.
    handover::one_connection();

    let mut report = Report::new(opts.policy, &opts.policy_origin);
    if let Err(msg) = driver::contained(|| checks::run(&opts, &env, &mut report)) {
        report.checks.push(Check::fail(
            "internal",
            format!("strata-verify stopped unexpectedly: {msg}"),
        ));
    }
    report.total_ms = started.elapsed().as_secs_f64() * 1e3;

    let json_text = json::to_string(&report.to_json());
    if opts.json_stdout {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(json_text.as_bytes());
        let _ = out.flush();
    } else {
        eprint!("{}", report.render_text());
    }
    if let Some(path) = &opts.json_file {
        if let Err(e) = std::fs::write(path, &json_text) {
            eprintln!(
                "strata-verify: cannot write the JSON report to {}: {e}",
                path.display()
            );
        }
    }

    release_gpus(&env, &inherited);
    if trace::enabled() {
        trace::mark("main", || {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            format!("next: execve, at unix time {unix:.6}")
        });
        let mut err = std::io::stderr().lock();
        for e in trace::take() {
            let _ = writeln!(err, "trace {:8.1} ms  {:<10} {}", e.at_ms, e.thread, e.what);
        }
    }

    let verdict = report.verdict();
    if verdict == Status::Fail && opts.policy.mode == Mode::Strict {
        let what = if opts.command.is_empty() {
            String::new()
        } else {
            format!(" `{}`", opts.command[0].to_string_lossy())
        };
        eprintln!(
            "strata-verify: GPU verification failed; not starting{what} (exit 1). The FAIL lines above give the cause and the fix; STRATA_VERIFY=warn starts the command anyway."
        );
        exit(1);
    }
    if verdict == Status::Fail {
        eprintln!(
            "strata-verify: GPU verification failed; starting the command anyway (policy warn)."
        );
    }
    run_command(&opts.command, verdict.key(), &inherited);
}

/// `strata-verify metrics`: serves until killed.
fn serve_metrics(listen: &str) -> ! {
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("strata-verify metrics: cannot listen on {listen}: {e}");
            exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_string());
    let source = Arc::new(metrics::NvmlSource::default());
    let nvml = match source.open() {
        Ok(()) => "NVML open".to_string(),
        Err(e) => format!("NVML not available yet ({e}); serving strata_gpu_up 0 until it is"),
    };
    eprintln!("strata-verify metrics: serving http://{addr}/metrics; {nvml}");
    let scrape: Arc<dyn Fn() -> String + Send + Sync> =
        Arc::new(move || metrics::render(&source.snapshot()));
    let e = metrics::serve(listener, metrics::ServerConfig::default(), scrape);
    eprintln!("strata-verify metrics: cannot accept connections on {addr}: {e}");
    exit(1);
}

/// Hands the teardown of the GPU contexts to a keeper process (unless
/// `STRATA_VERIFY_RELEASE=inline`), so that neither the `execve` nor the
/// exit waits for it (see handover::Release).
fn release_gpus(env: &BTreeMap<String, String>, inherited: &std::collections::BTreeSet<i32>) {
    let release = handover::Release::from_env(env.get("STRATA_VERIFY_RELEASE").map(|s| s.as_str()));
    let t = Instant::now();
    let how = match release {
        handover::Release::Inline => "inline (by the execve)".to_string(),
        handover::Release::Background => match handover::start_keeper(inherited, true) {
            Some(pid) => format!("a keeper process (pid {pid})"),
            None => "inline (no keeper: exclusive compute mode, or it could not start)".to_string(),
        },
        #[cfg(feature = "dev-kernels")]
        handover::Release::Child => format!(
            "keeper child: {:?}",
            handover::start_keeper(inherited, false)
        ),
    };
    trace::mark("main", || {
        format!(
            "GPU contexts released by {how} in {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        )
    });
}

/// Becomes `command` (never returns on success); exits 0 when there is none.
fn run_command(
    command: &[OsString],
    result: &str,
    inherited: &std::collections::BTreeSet<i32>,
) -> ! {
    if command.is_empty() {
        exit(0);
    }
    let (e, status) = handover::exec(command, result, inherited);
    eprintln!(
        "strata-verify: cannot run `{}`: {e}",
        command[0].to_string_lossy()
    );
    exit(status);
}
