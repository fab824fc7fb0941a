//! The command line as a user meets it: progress in CI logs and on a
//! terminal, NO_COLOR, pipes closed early, shell completions and man pages,
//! and docs that cover every command and flag the binary has.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;

fn has_escape(s: &str) -> bool {
    s.contains('\u{1b}')
}

/// A spec with one 24 MiB file: a few seconds of layer writing in a debug build.
fn slow_layer(dir: &Path) -> std::path::PathBuf {
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    fs_err::write(dir.join("big.bin"), &data).unwrap();
    let spec = dir.join("spec.yaml");
    fs_err::write(
        &spec,
        "version: 1\nname: slow\nlayers:\n  - name: big\n    files: [{path: /big.bin, source: big.bin}]\n",
    )
    .unwrap();
    spec
}

#[test]
fn plain_progress_has_a_heartbeat_with_done_total_rate_and_an_overall_total() {
    let t = tempfile::tempdir().unwrap();
    let spec = slow_layer(t.path());
    let o = run(strata()
        .env("STRATA_PROGRESS_INTERVAL", "0.2")
        .arg("--cache")
        .arg(t.path().join("cache"))
        .args(["--progress", "plain", "build"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("out").display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!has_escape(&err), "{err}");
    let beats: Vec<&str> = err.lines().filter(|l| l.starts_with(" layer big  ")).collect();
    assert!(!beats.is_empty(), "no heartbeat for the layer:\n{err}");
    for b in &beats {
        // ` layer big  4.0 MiB / 24.0 MiB (16%), 7.6 MiB/s`
        assert!(b.contains(" / 24.0 MiB (") && b.contains("%), ") && b.ends_with("/s"), "{b}");
    }
    let totals: Vec<&str> = err.lines().filter(|l| l.starts_with(" total layers: ")).collect();
    assert!(!totals.is_empty(), "{err}");
    assert!(totals.iter().all(|l| l.contains(" of 1 done, ") && l.contains(" elapsed")), "{totals:?}");
    // The start and end lines are still there.
    assert!(err.contains(" layer big (24.0 MiB)") && err.contains(" layer big — sha256:"), "{err}");

    // --progress none: no progress lines, the digest on stdout as always.
    let o = run(strata()
        .env("STRATA_PROGRESS_INTERVAL", "0.2")
        .arg("--cache")
        .arg(t.path().join("cache2"))
        .args(["--progress", "none", "build"])
        .arg(&spec)
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("out2").display())));
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.starts_with("built slow (1 layers") && err.lines().count() == 1, "only the summary: {err}");
    assert!(stdout(&o).starts_with("sha256:"));
}

#[test]
fn a_slow_download_gets_a_heartbeat_with_its_bytes_rate_and_the_total() {
    let t = tempfile::tempdir().unwrap();
    let tarball = raw_tar(&[TarItem::File("etc/motd", &[b'x'; 1500], 0o644)]);
    let sha = sha256_hex(&tarball);
    // A byte every millisecond: a few seconds for the whole archive, fast
    // enough for the minimum speed.
    let srv = Server::start(
        [("/a.tar".to_string(), Reply::Drip(tarball.clone(), std::time::Duration::from_millis(1)))].into(),
    );
    fs_err::write(
        t.path().join("spec.yaml"),
        format!(
            "version: 1\nname: x\nlayers:\n  - tarball: {{url: \"{}/a.tar\", sha256: \"{sha}\", size: {}}}\n",
            srv.addr,
            tarball.len()
        ),
    )
    .unwrap();
    let o = run(strata()
        .env("STRATA_PROGRESS_INTERVAL", "0.3")
        .arg("--cache")
        .arg(t.path().join("cache"))
        .args(["--progress", "plain", "build"])
        .arg(t.path().join("spec.yaml"))
        .arg("-o")
        .arg(format!("oci:{}", t.path().join("out").display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let size = format!("{:.1} KiB", tarball.len() as f64 / 1024.0);
    assert!(err.contains(&format!(" fetch 1 download, {size} in all")), "the overall work first: {err}");
    let beats: Vec<&str> = err.lines().filter(|l| l.starts_with(" fetch a.tar  ")).collect();
    assert!(!beats.is_empty(), "{err}");
    assert!(beats.iter().all(|b| b.contains(&format!(" / {size} (")) && b.ends_with("/s")), "{beats:?}");
    let totals: Vec<&str> = err.lines().filter(|l| l.starts_with(" total downloads: 0 of 1 done, ")).collect();
    assert!(totals.iter().any(|l| l.contains(&format!(" / {size} ("))), "{err}");
    assert!(!has_escape(&err));
}

/// Runs a shell command on a pseudo-terminal (util-linux `script`), so that
/// stderr is a terminal; returns everything it printed.
fn on_a_terminal(cmd: &str, env: &[(&str, &str)]) -> Option<String> {
    if !have("script") {
        return None;
    }
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"]).env_remove("NO_COLOR").env("TERM", "xterm");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    Some(stdout(&o))
}

#[test]
fn no_color_means_no_escape_sequences_even_on_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let spec = slow_layer(t.path());
    let bin = env!("CARGO_BIN_EXE_strata");
    // Each run with its own cache, so the layer is written each time.
    let cmd = |out: &str| {
        format!(
            "'{bin}' --cache '{}' -v build '{}' -o 'oci:{}'",
            t.path().join(format!("cache-{out}")).display(),
            spec.display(),
            t.path().join(out).display()
        )
    };
    // The check can see escapes: a terminal gets bars and coloured logs.
    let Some(tty) = on_a_terminal(&cmd("a"), &[]) else { return };
    assert!(has_escape(&tty), "{tty}");
    // The bars include an overall total.
    assert!(tty.contains(" total layers: 0 of 1 done"), "{tty}");
    let plain = on_a_terminal(&cmd("b"), &[("NO_COLOR", "1"), ("STRATA_PROGRESS_INTERVAL", "0.2")]).unwrap();
    assert!(!has_escape(&plain), "{plain}");
    assert!(plain.contains(" total layers: "), "NO_COLOR gives the plain heartbeat: {plain}");
    assert!(plain.contains("INFO"), "the -v log is there: {plain}");
}

#[test]
fn closing_the_pipe_early_ends_every_command_quietly() {
    let t = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_strata");
    let cache = t.path().join("cache");
    let hello = root().join("specs/hello.yaml");
    let layout = t.path().join("hello");
    let o = run(strata()
        .arg("--cache")
        .arg(&cache)
        .arg("-q")
        .arg("build")
        .arg(&hello)
        .arg("-o")
        .arg(format!("oci:{}", layout.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [
        format!("--cache '{}' build '{}' -o 'oci:{}'", cache.display(), hello.display(), t.path().join("b").display()),
        format!(
            "--cache '{}' --progress plain build '{}' -o 'oci:{}' --no-layer-cache",
            cache.display(),
            hello.display(),
            t.path().join("c").display()
        ),
        format!("inspect 'oci:{}:1.0'", layout.display()),
        format!("inspect --json 'oci:{}:1.0'", layout.display()),
        "--help".into(),
        "build --help".into(),
        "completions bash".into(),
        "man".into(),
        "schema".into(),
    ] {
        // bash's pipefail gives strata's own status, not head's.
        let o = run(Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; '{bin}' {args} 2>&1 | head -1 >/dev/null")));
        assert_eq!(o.status.code(), Some(0), "strata {args} | head -1: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    // stdout or stderr closed altogether.
    let o = run(Command::new("sh").arg("-c").arg(format!("'{bin}' inspect 'oci:{}:1.0' >&-", layout.display())));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(Command::new("sh").arg("-c").arg(format!("'{bin}' inspect /nonexistent 2>&-")));
    assert_eq!(o.status.code(), Some(1));
}

/// Subcommands (`build`, `cache prune`, …) and their long flags, read from
/// the binary's own `--help`.
fn commands_and_flags() -> BTreeSet<(String, String)> {
    fn help(path: &[String]) -> String {
        let o = run(strata().args(path).arg("--help"));
        assert!(o.status.success());
        stdout(&o)
    }
    fn walk(path: Vec<String>, out: &mut BTreeSet<(String, String)>) {
        let text = help(&path);
        let name = path.join(" ");
        let mut in_commands = false;
        for line in text.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if !line.starts_with("  ") {
                in_commands = false;
            }
            if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
                let sub = line.split_whitespace().next().unwrap().to_string();
                if sub != "help" {
                    let mut p = path.clone();
                    p.push(sub);
                    walk(p, out);
                }
            }
            for word in line.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
                if let Some(flag) = word.strip_prefix("--") {
                    let flag = flag.split(['=', '<']).next().unwrap();
                    if !flag.is_empty() && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                        out.insert((name.clone(), format!("--{flag}")));
                    }
                }
            }
        }
        out.insert((name, String::new()));
    }
    let mut out = BTreeSet::new();
    walk(vec![], &mut out);
    out
}

#[test]
fn every_command_and_flag_in_help_is_documented() {
    let mut docs = fs_err::read_to_string(root().join("README.md")).unwrap();
    for e in fs_err::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push_str(&fs_err::read_to_string(&p).unwrap());
        }
    }
    let mut missing = Vec::new();
    for (cmd, flag) in commands_and_flags() {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        if flag.is_empty() {
            if !cmd.is_empty() && !docs.contains(&format!("strata {cmd}")) {
                missing.push(format!("`strata {cmd}`"));
            }
        } else if !docs.contains(&flag) {
            missing.push(format!("`{flag}` of `strata {cmd}`"));
        }
    }
    assert!(missing.is_empty(), "not in README.md or docs/*.md: {}", missing.join(", "));
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let subcommands: BTreeSet<String> = commands_and_flags()
        .into_iter()
        .filter(|(c, f)| f.is_empty() && !c.is_empty() && !c.contains(' '))
        .map(|(c, _)| c)
        .collect();
    assert!(subcommands.contains("build") && subcommands.contains("completions") && subcommands.contains("man"));
    for (shell, marker) in [("bash", "_strata()"), ("zsh", "#compdef strata"), ("fish", "complete -c strata")] {
        let o = run(strata().args(["completions", shell]));
        assert!(o.status.success(), "{}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in &subcommands {
            assert!(script.contains(sub.as_str()), "{shell} completion lacks `{sub}`");
        }
        let (progress, context) = match shell {
            "fish" => ("-l progress", "-l context"),
            _ => ("--progress", "--context"),
        };
        assert!(script.contains(progress) && script.contains(context), "{shell}");
        // The shell itself accepts it, when it is installed.
        let check = if shell == "fish" { "--no-execute" } else { "-n" };
        if Command::new(shell).arg("--version").output().is_ok_and(|o| o.status.success()) {
            let f = tempfile::NamedTempFile::new().unwrap();
            fs_err::write(f.path(), &script).unwrap();
            let o = run(Command::new(shell).arg(check).arg(f.path()));
            assert!(o.status.success(), "{shell} {check}: {}", stderr(&o));
        }
    }
    let o = run(strata().arg("man"));
    let page = stdout(&o);
    assert!(page.contains(".TH strata 1"), "{page}");
    for sub in &subcommands {
        assert!(page.contains(&format!("strata\\-{sub}(1)")) || page.contains(sub.as_str()), "man page lacks {sub}");
    }
    let t = tempfile::tempdir().unwrap();
    let o = run(strata().arg("man").arg("--dir").arg(t.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    for page in ["strata.1", "strata-build.1", "strata-cache-prune.1"] {
        let text = fs_err::read_to_string(t.path().join(page)).unwrap();
        assert!(text.starts_with(".ie") && text.contains(".TH"), "{page}");
    }
    let build = fs_err::read_to_string(t.path().join("strata-build.1")).unwrap();
    assert!(build.contains("\\-\\-context") && build.contains("\\-\\-no\\-layer\\-cache"), "{build}");
    if Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let o = run(Command::new("man").arg("-l").arg(t.path().join("strata-build.1")).env("MANPAGER", "cat"));
        assert!(o.status.success() && stdout(&o).contains("context"), "{}", stderr(&o));
    }
}
