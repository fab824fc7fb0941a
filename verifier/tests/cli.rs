//! The binary as CI sees it: no NVIDIA driver on the machine. Strict mode
//! must stop with words about the driver and must not run the command; warn
//! mode must report and then run it; `off` must run it without checking.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata-verify"));
    // Start from a clean policy whatever the developer's shell has.
    for var in [
        "STRATA_VERIFY",
        "STRATA_VERIFY_JSON",
        "STRATA_CUDA_VERSION",
        "STRATA_ALLOWED_SM",
        "NVIDIA_REQUIRE_CUDA",
    ] {
        c.env_remove(var);
    }
    c
}

/// These tests describe a machine without the driver. On a machine that
/// has one they would test something else, so they say so and stop.
fn driver_present() -> bool {
    if Path::new("/dev/nvidiactl").exists() {
        return true;
    }
    // SAFETY: only checks whether the loader can find the library.
    unsafe { libloading::Library::new("libcuda.so.1") }.is_ok()
}

fn marker(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-verify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn strict_mode_without_driver_fails_and_does_not_run_the_command() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let mark = marker("strict");
    let o = bin()
        .args([
            "--",
            "sh",
            "-c",
            &format!("echo ran; touch {}", mark.display()),
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(
        !mark.exists(),
        "the command ran although verification failed"
    );
    assert!(!out.contains("ran"));
    assert!(err.contains("FAIL  libcuda"), "{err}");
    assert!(
        err.contains("NVIDIA driver libraries were not injected"),
        "{err}"
    );
    assert!(
        err.contains("fix: start the container with GPU access: `docker run --gpus all"),
        "{err}"
    );
    assert!(err.contains("not starting `sh` (exit 1)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn warn_mode_without_driver_reports_then_runs_the_command() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    for how in [vec![("STRATA_VERIFY", "warn")], vec![]] {
        let mut cmd = bin();
        for (k, v) in &how {
            cmd.env(k, v);
        }
        if how.is_empty() {
            cmd.arg("--warn");
        }
        let o = cmd
            .args([
                "--",
                "sh",
                "-c",
                "echo ran result=$STRATA_VERIFY_RESULT; exit 7",
            ])
            .output()
            .unwrap();
        let (out, err) = text(&o);
        // The command's own exit status comes back: the process became it.
        assert_eq!(o.status.code(), Some(7), "stdout: {out}\nstderr: {err}");
        assert_eq!(out, "ran result=fail\n");
        assert!(err.contains("verdict: FAIL"), "{err}");
        assert!(err.contains("starting the command anyway"), "{err}");
    }
}

#[test]
fn off_runs_the_command_without_checking() {
    let o = bin()
        .env("STRATA_VERIFY", "off")
        .args(["--", "sh", "-c", "echo $STRATA_VERIFY_RESULT"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "off\n");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn json_report_on_stdout_and_in_a_file() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let file = marker("json");
    let o = bin()
        .env("STRATA_VERIFY_JSON", &file)
        .args(["--json", "--warn"])
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out.contains("\"schema\": \"strata-verify/report/v1\""),
        "{out}"
    );
    assert!(out.contains("\"verdict\": \"fail\""), "{out}");
    assert!(out.contains("\"name\": \"libcuda\""), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), out);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn usage_errors_exit_2_and_missing_commands_127() {
    let o = bin().arg("python").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("put the command to run after `--`"));
    let o = bin().env("STRATA_VERIFY", "fast").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("STRATA_VERIFY=`fast`"),
        "{}",
        text(&o).1
    );
    let o = bin()
        .args(["--off", "--", "/nonexistent/command"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(text(&o).1.contains("cannot run `/nonexistent/command`"));
    let o = bin().arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("usage: strata-verify"));
}
