//! `specs/ssh-base.yaml` (Debian base + tools + OpenSSH + strata-start) end
//! to end: built from its committed lock, unpacked with umoci, run under
//! runc on the host's loopback network, reached with the host's `ssh`.
//!
//! - a test key logs in as uid 1000 and runs a command (bash, /bin/sh is dash);
//!   a wrong key and a password are refused;
//! - a password counts only when the operator gives a hash, and key AND
//!   password can be required together;
//! - without keys sshd does not start and the log says how to enable it;
//! - SIGTERM stops the container promptly with status 0;
//! - a command given to the container runs instead of the start script;
//! - with JupyterLab in the image (a stand-in here), strata-start runs it
//!   beside sshd and the GPU metrics endpoint, with HTTPS when a certificate
//!   is mounted, and the container exits with its status;
//! - no private key of any kind is in any layer.
//!
//! Like tests/it/debs_real.rs, it runs when every pinned .deb is already in the
//! cache (`$STRATA_CACHE` or the default cache), or when `STRATA_NET_TESTS=1`
//! allows downloading them; otherwise it is skipped with a note. The image is
//! built once per run of the test binary. Needs umoci, runc (root), ssh and
//! ssh-keygen (openssh-client); with `STRATA_REQUIRE_TOOLS=1` a missing tool
//! is a failure.

use crate::common::{is_root, require_or_skip, root as repo, tool};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The built and unpacked image, shared by the tests of this binary.
struct Image {
    /// The OCI layout.
    layout: PathBuf,
    /// The unpacked root filesystem.
    rootfs: PathBuf,
    /// umoci's runtime config for the image.
    config: serde_json::Value,
    /// Scratch space (keys, bundles).
    work: PathBuf,
}

/// Builds and unpacks specs/ssh-base.yaml once; `None` when the test must
/// be skipped (a note says why).
fn image() -> Option<&'static Image> {
    static IMAGE: OnceLock<Option<Image>> = OnceLock::new();
    IMAGE.get_or_init(build).as_ref()
}

fn build() -> Option<Image> {
    let spec = repo().join("specs/ssh-base.yaml");
    let loaded = strata::spec::load_with(&spec, &strata::spec::LoadOptions { context: None }).unwrap();
    let lock = strata::lock::load_for(&loaded).unwrap().expect("specs/ssh-base.lock is committed");
    let cache = strata::store::Store::default_root();
    if crate::common::pinned_artifacts_unavailable(&loaded, &lock) {
        return None;
    }
    let online = std::env::var("STRATA_NET_TESTS").as_deref() == Ok("1");
    for t in ["umoci", "runc", "ssh", "ssh-keygen"] {
        if tool(t).is_none() {
            require_or_skip(t);
            return None;
        }
    }
    if !is_root() {
        require_or_skip("root (for runc)");
        return None;
    }
    // One place for every run (about 300 MB: the layout and the unpacked
    // root filesystem), emptied first, so runs do not pile up.
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ssh-base");
    let _ = fs_err::remove_dir_all(&work);
    fs_err::create_dir_all(&work).unwrap();
    let layout = work.join("oci");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("--cache").arg(&cache).arg("--quiet").arg("build").arg(&spec);
    cmd.arg("-o").arg(format!("oci:{}:t", layout.display()));
    if !online {
        cmd.arg("--offline");
    }
    let out = cmd.output().unwrap();
    if crate::common::pin_gone_from_archive(&out, "specs/ssh-base.lock") {
        return None;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = work.join("unpacked");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&fs_err::read(bundle.join("config.json")).unwrap()).unwrap();
    for name in ["key", "other", "wrong"] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(work.join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Answers password prompts (SSH_ASKPASS) with the test's password.
    let ask = work.join("askpass.sh");
    fs_err::write(&ask, "#!/bin/sh\necho \"$TEST_PASSWORD\"\n").unwrap();
    fs_err::set_permissions(&ask, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Some(Image { layout, rootfs: bundle.join("rootfs"), config, work })
}

/// Containers share the unpacked root filesystem (strata-start resets what
/// it writes there at every start), so they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running container (killed and deleted when dropped).
struct Container {
    id: String,
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Container {
    /// Starts the image with extra environment (and `args` instead of its cmd when given).
    fn start(img: &Image, env: &[(&str, String)], args: Option<&[&str]>) -> Container {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = free_port();
        let bundle = img.work.join(format!("bundle-{n}"));
        fs_err::create_dir_all(&bundle).unwrap();
        let mut cfg = img.config.clone();
        cfg["root"]["path"] = img.rootfs.to_str().unwrap().into();
        cfg["process"]["terminal"] = false.into();
        let envs = cfg["process"]["env"].as_array_mut().unwrap();
        envs.push(format!("SSH_PORT={port}").into());
        for (k, v) in env {
            envs.push(format!("{k}={v}").into());
        }
        if let Some(a) = args {
            cfg["process"]["args"] = serde_json::json!(a);
        }
        // The host's network: the test reaches sshd on 127.0.0.1.
        cfg["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
        fs_err::write(bundle.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let id = format!("strata-ssh-{}-{n}", std::process::id());
        let log = bundle.join("log");
        let f = fs_err::File::create(&log).unwrap();
        let child = Command::new("runc")
            .arg("run")
            .arg(&id)
            .current_dir(&bundle)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap().into_parts().0)
            .stderr(f.into_parts().0)
            .spawn()
            .unwrap();
        Container { id, child: Some(child), log, port }
    }

    fn log(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until sshd answers with its banner.
    fn wait_for_sshd(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut b = [0u8; 8];
                if s.read_exact(&mut b).is_ok() && &b == b"SSH-2.0-" {
                    return;
                }
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the container exited ({st}) before sshd listened:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "sshd did not listen on {} in 30 s:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the container to exit; its status.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ssh -p PORT jupyter@127.0.0.1 COMMAND` with `opts`; (status, stdout, stderr).
    fn ssh(&self, img: &Image, opts: &[&str], password: Option<&str>, command: &str) -> (i32, String, String) {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-p", &self.port.to_string()]);
        c.args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]);
        c.args(["-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes", "-o", "NumberOfPasswordPrompts=1"]);
        match password {
            Some(p) => {
                c.env("SSH_ASKPASS", img.work.join("askpass.sh")).env("SSH_ASKPASS_REQUIRE", "force");
                c.env("TEST_PASSWORD", p);
            }
            None => {
                c.args(["-o", "BatchMode=yes"]);
            }
        }
        c.args(opts).arg("jupyter@127.0.0.1").arg(command).stdin(Stdio::null());
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc").args(["kill", &self.id, "KILL"]).output();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let _ = Command::new("runc").args(["delete", "-f", &self.id]).output();
    }
}

fn pubkey(img: &Image, name: &str) -> String {
    fs_err::read_to_string(img.work.join(format!("{name}.pub"))).unwrap().trim().to_string()
}

fn key_opt(img: &Image, name: &str) -> String {
    img.work.join(name).to_str().unwrap().to_string()
}

#[test]
fn a_key_logs_in_as_uid_1000_and_a_wrong_key_or_a_password_is_refused() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Two keys in the variable, newline-separated (CRLF too); the test key is the second.
    let keys = format!("# a comment\r\n{}\r\n{}\n", pubkey(img, "other"), pubkey(img, "key"));
    let mut c = Container::start(img, &[("SSH_AUTHORIZED_KEYS", keys)], None);
    c.wait_for_sshd();
    let k = key_opt(img, "key");
    let (st, out, err) =
        c.ssh(img, &["-i", &k], None, "id -u; id -un; echo \"$0\"; readlink -f /bin/sh; sh -c 'echo $((6 * 7))'; pwd");
    assert_eq!(st, 0, "{err}\n{}", c.log());
    assert_eq!(out, "1000\njupyter\nbash\n/usr/bin/dash\n42\n/home/jupyter\n", "{err}");
    let w = key_opt(img, "wrong");
    let (st, _, err) = c.ssh(img, &["-i", &w], None, "true");
    assert_eq!(st, 255, "a wrong key must be refused: {err}");
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    // No password hash given: the server does not even offer passwords.
    let (st, _, err) = c.ssh(img, &["-o", "PreferredAuthentications=password,keyboard-interactive"], Some("x"), "true");
    assert_eq!(st, 255, "{err}");
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    let log = c.log();
    assert!(log.contains("sshd: host keys made for this container"), "{log}");
    assert!(log.contains("2 authorized key(s), passwords no"), "{log}");
}

#[test]
fn a_password_counts_only_with_a_hash_and_key_and_password_can_be_required_together() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let o = Command::new("openssl").args(["passwd", "-6", "-salt", "strataTEST", "s3cret"]).output();
    let Ok(o) = o else {
        require_or_skip("openssl");
        return;
    };
    let hash = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(hash.starts_with("$6$"), "{hash}");
    let k = key_opt(img, "key");
    // A password alone (no keys at all) is enough to start sshd.
    {
        let mut c = Container::start(img, &[("SSH_PASSWORD_HASH", hash.clone())], None);
        c.wait_for_sshd();
        let pw = ["-o", "PreferredAuthentications=password"];
        let (st, out, err) = c.ssh(img, &pw, Some("s3cret"), "id -u");
        assert_eq!((st, out.as_str()), (0, "1000\n"), "{err}\n{}", c.log());
        let (st, _, err) = c.ssh(img, &pw, Some("wrong"), "true");
        assert_eq!(st, 255, "a wrong password must be refused: {err}");
    }
    // Key and password together.
    let env = [
        ("SSH_AUTHORIZED_KEYS", pubkey(img, "key")),
        ("SSH_PASSWORD_HASH", hash),
        ("SSH_AUTHENTICATION_METHODS", "publickey,password".to_string()),
    ];
    let mut c = Container::start(img, &env, None);
    c.wait_for_sshd();
    let (st, _, err) = c.ssh(img, &["-i", &k], None, "true");
    assert_eq!(st, 255, "the key alone must not do: {err}");
    let (st, _, err) = c.ssh(img, &["-o", "PreferredAuthentications=password"], Some("s3cret"), "true");
    assert_eq!(st, 255, "the password alone must not do: {err}");
    let (st, _, err) = c.ssh(img, &["-i", &k], Some("wrong"), "true");
    assert_eq!(st, 255, "the key with a wrong password must not do: {err}");
    let (st, out, err) = c.ssh(img, &["-i", &k], Some("s3cret"), "echo both");
    assert_eq!((st, out.as_str()), (0, "both\n"), "{err}\n{}", c.log());
}

#[test]
fn without_keys_sshd_does_not_start_and_the_log_says_how() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Container::start(img, &[], None);
    let st = c.wait(Duration::from_secs(30));
    let log = c.log();
    // No JupyterLab in this image and SSH off: nothing to run.
    assert_eq!(st, Some(64), "{log}");
    assert!(log.contains("SSH is off: no keys given"), "{log}");
    assert!(log.contains("-e SSH_AUTHORIZED_KEYS="), "{log}");
    assert!(!log.contains("Server listening"), "{log}");
}

#[test]
fn sigterm_stops_it_promptly_with_status_0() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Container::start(img, &[("SSH_AUTHORIZED_KEYS", pubkey(img, "key"))], None);
    c.wait_for_sshd();
    // A session that leaves a child behind (a zombie once it exits) must not hold the stop up.
    let k = key_opt(img, "key");
    let (st, _, err) = c.ssh(img, &["-i", &k], None, "sleep 300 >/dev/null 2>&1 </dev/null & echo started");
    assert_eq!(st, 0, "{err}");
    let t = Instant::now();
    let o = Command::new("runc").args(["kill", &c.id, "TERM"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = c.wait(Duration::from_secs(15));
    assert_eq!(st, Some(0), "{}", c.log());
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert!(c.log().contains("Received signal 15; terminating."), "{}", c.log());
    assert!(c.log().contains("strata-start: stopped"), "{}", c.log());
}

#[test]
fn a_command_runs_instead_of_the_start_script() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The start script is the default command only: no entrypoint wraps a command.
    assert_eq!(
        img.config["process"]["args"],
        serde_json::json!(["/usr/bin/tini", "-g", "--", "/usr/local/bin/strata-start"])
    );
    let args = ["bash", "-c", "echo \"$(id -u) $(cat /proc/1/comm)\"; sh -c 'echo sh works'"];
    let mut c = Container::start(img, &[("SSH_AUTHORIZED_KEYS", pubkey(img, "key"))], Some(&args));
    let st = c.wait(Duration::from_secs(30));
    assert_eq!(st, Some(0), "{}", c.log());
    assert_eq!(c.log(), "1000 bash\nsh works\n");
}

#[test]
fn no_private_key_is_in_any_layer() {
    let Some(img) = image() else { return };
    let blobs = img.layout.join("blobs/sha256");
    let json = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(blobs.join(d.trim_start_matches("sha256:"))).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(img.layout.join("index.json")).unwrap()).unwrap();
    let manifest = json(index["manifests"][0]["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5);
    let mut files = 0;
    for l in layers {
        let raw = fs_err::read(blobs.join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"))).unwrap();
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&raw[..]));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = path.rsplit('/').next().unwrap_or("").to_string();
            let key_name = name.starts_with("ssh_host_")
                || ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk"]
                    .contains(&name.as_str());
            assert!(!key_name, "{path}: a key file in layer {}", l["digest"]);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files += 1;
            // Programs and libraries are not key files: libgnutls carries
            // the published keys of its self-tests as PEM constants.
            let hit = !data.starts_with(b"\x7fELF") && has_private_key(&data);
            assert!(!hit, "{path}: a private key in layer {}", l["digest"]);
        }
    }
    assert!(files > 1000, "only {files} files read");
    // The check finds a real key (and the strings programs carry do not count).
    assert!(has_private_key(&fs_err::read(img.work.join("key")).unwrap()));
    assert!(!has_private_key(b"\0-----BEGIN OPENSSH PRIVATE KEY-----\n\0-----END OPENSSH PRIVATE KEY-----\n\0"));
}

/// Whether `data` holds a PEM private key of any kind (`-----BEGIN OPENSSH
/// PRIVATE KEY-----`, `RSA`, `EC`, `ENCRYPTED`, PKCS#8 ...): the armour line
/// and a line break followed by a line of base64, which the constants in
/// programs lack.
fn has_private_key(data: &[u8]) -> bool {
    const ARMOUR: &[u8] = b"PRIVATE KEY-----";
    let mut from = 0;
    while let Some(i) = data[from..].windows(ARMOUR.len()).position(|w| w == ARMOUR) {
        let mut rest = &data[from + i + ARMOUR.len()..];
        from += i + ARMOUR.len();
        // A PEM file breaks the line after the armour (the constants of
        // messages and parsers in programs do not).
        rest = match rest.strip_prefix(b"\r\n").or_else(|| rest.strip_prefix(b"\n")) {
            Some(r) => r,
            None => continue,
        };
        // Encrypted PEM keys have header lines first ("Proc-Type: ...").
        while rest.iter().take_while(|&&c| c != b'\n').any(|&c| c == b':') {
            rest = rest.splitn(2, |&c| c == b'\n').nth(1).unwrap_or(&[]);
        }
        let b64 =
            rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'+' || **c == b'/' || **c == b'=').count();
        if b64 >= 40 {
            return true;
        }
    }
    false
}

/// Stand-ins for JupyterLab and strata-verify (ssh-base has neither), put
/// into the shared root filesystem under /opt/fake and removed afterwards.
struct FakeTools<'a>(&'a Image);

impl<'a> FakeTools<'a> {
    fn install(img: &'a Image) -> FakeTools<'a> {
        let bin = img.rootfs.join("opt/fake");
        fs_err::create_dir_all(&bin).unwrap();
        // `jupyter lab ARGS`: prints its arguments and what it can see, then
        // exits 3 after sshd answered (or at once, without sshd).
        let jupyter = "#!/bin/sh\necho \"jupyter: $*\"\necho \"token: ${JUPYTER_TOKEN:-none}\"\nsleep 1\nexit 3\n";
        let verify = "#!/bin/sh\necho \"strata-verify: $*\"\nexec sleep 300\n";
        for (name, text) in [("jupyter", jupyter), ("strata-verify", verify)] {
            fs_err::write(bin.join(name), text).unwrap();
            fs_err::set_permissions(bin.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let tls = img.rootfs.join("etc/strata/tls");
        fs_err::write(tls.join("tls.crt"), "not read by the fake\n").unwrap();
        fs_err::write(tls.join("tls.key"), "not read by the fake\n").unwrap();
        FakeTools(img)
    }
}

impl Drop for FakeTools<'_> {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(self.0.rootfs.join("opt/fake"));
        for f in ["tls.crt", "tls.key"] {
            let _ = fs_err::remove_file(self.0.rootfs.join("etc/strata/tls").join(f));
        }
    }
}

#[test]
fn jupyter_runs_beside_sshd_with_https_and_metrics_and_its_status_is_the_containers() {
    let Some(img) = image() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _fake = FakeTools::install(img);
    let path = "/opt/fake:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string();
    let env = [
        ("PATH", path),
        ("SSH_AUTHORIZED_KEYS", pubkey(img, "key")),
        ("JUPYTER_TOKEN", "t0ken".to_string()),
        ("STRATA_GPU_METRICS", "1".to_string()),
        ("STRATA_GPU_METRICS_PORT", "9555".to_string()),
    ];
    let mut c = Container::start(img, &env, None);
    let st = c.wait(Duration::from_secs(30));
    let log = c.log();
    assert_eq!(st, Some(3), "the container exits with JupyterLab's status:\n{log}");
    assert!(log.contains("sshd: port"), "{log}");
    assert!(log.contains("GPU metrics for Prometheus: http://0.0.0.0:9555/metrics"), "{log}");
    assert!(log.contains("strata-verify: metrics --listen 0.0.0.0:9555"), "{log}");
    assert!(log.contains("JupyterLab: HTTPS with /etc/strata/tls/tls.crt"), "{log}");
    assert!(
        log.contains(
            "jupyter: lab --ip=0.0.0.0 --no-browser --ServerApp.certfile=/etc/strata/tls/tls.crt --ServerApp.keyfile=/etc/strata/tls/tls.key"
        ),
        "{log}"
    );
    assert!(log.contains("token: t0ken"), "{log}");
}
