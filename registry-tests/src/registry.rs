//! Debian's `docker-registry` (distribution 2.8.2) on a free loopback port,
//! with its own storage, config and log in a temporary directory; killed
//! (by its PID) when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::token::TokenServer;

/// How the registry authenticates.
pub enum Auth<'a> {
    /// No authentication.
    Open,
    /// htpasswd basic auth with [`crate::USER`] / [`crate::PASSWORD`].
    Htpasswd,
    /// Bearer tokens from a token server.
    Token(&'a TokenServer),
}

/// A running registry.
pub struct TestRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("binding an ephemeral port")
}

impl TestRegistry {
    /// Starts one; panics (failing the test) when it does not come up.
    pub fn start(auth: Auth<'_>) -> TestRegistry {
        Self::start_with(auth, false)
    }

    /// Starts one serving HTTPS with the committed test certificate for
    /// 127.0.0.1 (signed by fixtures/tls-ca.pem).
    pub fn start_tls(auth: Auth<'_>) -> TestRegistry {
        Self::start_with(auth, true)
    }

    fn start_with(auth: Auth<'_>, tls: bool) -> TestRegistry {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&auth, tls) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("docker-registry did not start: {last}");
    }

    fn try_start(auth: &Auth<'_>, tls: bool) -> Result<TestRegistry, String> {
        let dir = tempfile::Builder::new().prefix("strata-regtest-registry-").tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let auth_yaml = match auth {
            Auth::Open => String::new(),
            Auth::Htpasswd => {
                let p = dir.path().join("htpasswd");
                std::fs::write(&p, format!("{}\n", crate::HTPASSWD)).map_err(|e| e.to_string())?;
                format!("auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n", p.display())
            }
            Auth::Token(t) => {
                let p = dir.path().join("token-cert.pem");
                std::fs::write(&p, t.cert_pem()).map_err(|e| e.to_string())?;
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    p.display()
                )
            }
        };
        let tls_yaml = if tls {
            let fx = crate::workspace().join("registry-tests/fixtures");
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                fx.join("tls-server.pem").display(),
                fx.join("tls-server.key").display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: strata-test-secret\n{tls_yaml}{auth_yaml}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("registry.log")).map_err(|e| e.to_string())?;
        let bin = crate::which("docker-registry").ok_or("docker-registry not found")?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                return Err(format!("exited with {st}:\n{log}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(TestRegistry { addr, child, dir });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err("not listening after 15 s".into())
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Its configuration file (another `docker-registry serve` of it, e.g.
    /// inside a network namespace, serves the same storage).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the log is.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
