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

/// Every function the verifier resolves from libcuda, as the CUDA toolkit's
/// link-time stub defines them: each returns CUDA_ERROR_STUB_LIBRARY (34).
/// (The real stub is tried on a GPU machine by verifier/device/verify-all.sh;
/// CI has no CUDA toolkit, so it compiles this stand-in with the C compiler
/// Rust links with.)
const STUB_FUNCTIONS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuGetErrorName",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDeviceTotalMem_v2",
    "cuDeviceGetUuid_v2",
    "cuDeviceGetPCIBusId",
    "cuDevicePrimaryCtxRetain",
    "cuCtxSetCurrent",
    "cuCtxSynchronize",
    "cuMemGetInfo_v2",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemcpyHtoD_v2",
    "cuMemcpyDtoH_v2",
    "cuMemcpyDtoDAsync_v2",
    "cuMemsetD8_v2",
    "cuMemsetD32_v2",
    "cuModuleLoadDataEx",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuStreamCreate",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventElapsedTime_v2",
    "cuEventDestroy_v2",
];

/// Builds `dir/libcuda.so.1` from `functions` (each returning 34). None when
/// there is no C compiler (then the caller skips, unless tools are required).
fn build_stub(dir: &Path, functions: &[&str]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("stub.c");
    let body: String = functions
        .iter()
        .map(|f| format!("int {f}(void) {{ return 34; }}\n"))
        .collect();
    std::fs::write(&src, body).unwrap();
    let out = dir.join("libcuda.so.1");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("STRATA_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "cannot build a test library with {cc}"
        );
        eprintln!("skipped: no C compiler ({cc})");
        return None;
    }
    let _ = std::fs::remove_file(&src);
    Some(out)
}

#[test]
fn a_stub_libcuda_outside_a_stubs_directory_is_named_for_removal() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let dir =
        std::env::temp_dir().join(format!("strata-verify-stub-{}/opt/lib", std::process::id()));
    let Some(stub) = build_stub(&dir, STUB_FUNCTIONS) else {
        return;
    };
    let o = bin()
        .env("LD_LIBRARY_PATH", &dir)
        .args(["--", "echo", "SHOULD-NOT-RUN"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!out.contains("SHOULD-NOT-RUN"));
    let want = format!(
        "FAIL libcuda: {} is the CUDA toolkit's stub library, not the driver: its cuDriverGetVersion returns CUDA_ERROR_STUB_LIBRARY (34) and it lacks the driver's cudbg* entry points: there is no driver behind it\n  fix: remove {} from the image, or {} from LD_LIBRARY_PATH and /etc/ld.so.conf.d (then run ldconfig): it is the CUDA toolkit's link-time stub, and CUDA programs, PyTorch included, load it instead of the driver's libcuda; then start the container with GPU access",
        stub.display(),
        stub.display(),
        dir.display()
    );
    assert!(err.contains(&want), "expected\n{want}\nin\n{err}");
    // Nothing else ran: no cuInit against a stub.
    assert!(!err.contains("cuinit"), "{err}");

    // A library that lacks one of the driver's functions is not taken for
    // the driver either, whatever it answers.
    let partial: Vec<&str> = STUB_FUNCTIONS
        .iter()
        .copied()
        .filter(|f| *f != "cuMemsetD32_v2")
        .collect();
    let dir2 = dir.with_file_name("lib2");
    let Some(lib) = build_stub(&dir2, &partial) else {
        return;
    };
    let o = bin().env("LD_LIBRARY_PATH", &dir2).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "FAIL libcuda: {} has no function cuMemsetD32_v2: it is not a complete CUDA driver library",
            lib.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap());
}

#[test]
fn metrics_without_a_gpu_answer_up_zero_and_keep_serving() {
    use std::io::{BufRead, BufReader, Read, Write};
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let mut child = bin()
        .args(["metrics", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("strata-verify metrics: serving http://127.0.0.1:"),
        "{first}"
    );
    assert!(first.contains("NVML not available yet"), "{first}");
    let addr = first
        .trim_start_matches("strata-verify metrics: serving http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let get = |req: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    for _ in 0..2 {
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\nstrata_gpu_up 0\n"), "{r}");
        assert!(r.contains("# NVML unavailable: "), "{r}");
    }
    assert!(get("GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    let _ = child.kill();
    let _ = child.wait();
    // A port that cannot be had is an error in words, exit 1.
    let o = bin()
        .args(["metrics", "--listen", "256.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .1
            .starts_with("strata-verify metrics: cannot listen on 256.0.0.1:1: "),
        "{}",
        text(&o).1
    );
}

/// What the command is handed: the caller's environment (the verifier sets
/// CUDA_DEVICE_MAX_CONNECTIONS for itself only), the caller's descriptors,
/// and no process of the verifier's as its child (the keeper that holds the
/// GPU handles past the execve is detached, and gone once the command runs).
#[test]
fn the_command_gets_the_callers_environment_and_no_child_of_ours() {
    if driver_present() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let script = "echo conn=${CUDA_DEVICE_MAX_CONNECTIONS-unset}; \
                  sleep 0.3; read kids < /proc/$$/task/$$/children; echo \"children=[$kids]\"; \
                  ls /proc/self/fd | tr '\\n' ' '";
    let direct = Command::new("sh").args(["-c", script]).output().unwrap();
    let (direct_out, _) = text(&direct);
    for (conn, want) in [(None, "conn=unset"), (Some("4"), "conn=4")] {
        let mut cmd = bin();
        cmd.env("STRATA_VERIFY", "warn")
            .env("STRATA_VERIFY_TRACE", "1");
        cmd.env_remove("STRATA_VERIFY_RELEASE");
        match conn {
            Some(v) => cmd.env("CUDA_DEVICE_MAX_CONNECTIONS", v),
            None => cmd.env_remove("CUDA_DEVICE_MAX_CONNECTIONS"),
        };
        let o = cmd.args(["--", "sh", "-c", script]).output().unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
        assert!(out.starts_with(&format!("{want}\n")), "{out}");
        assert!(
            out.contains("children=[]"),
            "a child of the verifier under the command: {out}"
        );
        // The same descriptors as when the shell is started directly.
        assert_eq!(
            out.lines().last(),
            direct_out.lines().last(),
            "descriptors differ from a direct start"
        );
        let pid: i32 = err
            .split("a keeper process (pid ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no keeper in the trace: {err}"));
        // Gone, or a zombie waiting for whatever init adopted it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        assert!(
            stat.is_empty() || state == Some("Z") || !stat.contains("strata-verify"),
            "the keeper {pid} still runs: {stat}"
        );
    }
    // Inline release: no keeper at all.
    let o = bin()
        .env("STRATA_VERIFY", "warn")
        .env("STRATA_VERIFY_TRACE", "1")
        .env("STRATA_VERIFY_RELEASE", "inline")
        .args(["--", "true"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(err.contains("released by inline (by the execve)"), "{err}");
}
