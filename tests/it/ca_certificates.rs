//! The corporate-CA recipe of docs/debian.md end to end: curl from Debian
//! packages in the image fetches from a loopback HTTPS server whose
//! certificate is signed by a CA made for the test, under runc, once the CA
//! is added with `ca_certificates:` (or placed in
//! /usr/local/share/ca-certificates), and fails without it.
//!
//! The Debian packages come from this machine, not from the internet: the
//! host's `curl` and the libraries `ldd` lists for it are packed into .debs
//! and served from the signed loopback archive of tests/debs_support, so the
//! image is built through the real `debs:` path (lock, signature, merged
//! /usr, stand-ins). The TLS server is `openssl s_server`, the CAs are made
//! with `openssl` for each run (nothing that can expire in a fixture).
//! Needs curl, ldd, openssl, umoci and runc, and root for runc.

use crate::common;
use crate::debs_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{have, is_root, layout_entries, run, runc_run, stderr, stdout};
use debs_support as deb;

fn openssl(dir: &Path, args: &[&str]) {
    let o = run(Command::new("openssl").args(args).current_dir(dir));
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
}

/// A root CA `NAME.pem` (key `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `srv.pem`/`srv.key` for 127.0.0.1, signed by the CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs_err::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "3",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// `openssl s_server -WWW` on a free loopback port, serving `dir`.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-cert", "srv.pem", "-key", "srv.key", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's curl and every library it loads, as a Debian package laid
/// out as Debian ships it (libraries in /lib/x86_64-linux-gnu, the loader
/// linked from /lib64).
fn host_curl_package() -> deb::Pkg {
    let o = run(Command::new("ldd").arg("/usr/bin/curl"));
    assert!(o.status.success(), "ldd: {}", stderr(&o));
    let mut p = deb::pkg("curl", "7.88.1-host").comp(deb::Comp::Gz);
    p = p.with(deb::exe("./usr/bin/curl", &fs_err::read("/usr/bin/curl").unwrap()));
    for line in stdout(&o).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if !path.starts_with('/') {
            continue; // the vDSO
        }
        let name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs_err::read(fs_err::canonicalize(path).unwrap()).unwrap();
        p = p.with(deb::exe(&format!("./lib/x86_64-linux-gnu/{name}"), &bytes));
        if path.starts_with("/lib64/") {
            p = p.with(deb::link(&format!("./lib64/{name}"), &format!("/lib/x86_64-linux-gnu/{name}")));
        }
    }
    p
}

struct Fixture {
    _server: deb::Server,
    dir: tempfile::TempDir,
    archive: String,
}

impl Fixture {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn strata(&self, args: &[&str]) -> std::process::Output {
        run(common::strata()
            .arg("--cache")
            .arg(self.path("cache"))
            .arg("--quiet")
            .args(args)
            .current_dir(self.dir.path()))
    }

    /// Writes, locks and builds `NAME.yaml` (the Debian layer plus `more`
    /// layers) into the layout `out`, tag `t`.
    fn image(&self, name: &str, os_extra: &str, more: &str) -> PathBuf {
        let spec = format!(
            "version: 1\nname: {name}\ntag: t\nlayers:\n  - name: os\n    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{}\", suites: [stable]}}]\n      packages: [curl, ca-certificates]\n{os_extra}{more}config:\n  entrypoint: [/usr/bin/curl]\n",
            self.archive
        );
        fs_err::write(self.path(&format!("{name}.yaml")), spec).unwrap();
        let o = self.strata(&["lock", &format!("{name}.yaml")]);
        assert!(o.status.success(), "lock: {}", stderr(&o));
        let out = self.path(&format!("{name}-layout"));
        let o = self.strata(&["build", &format!("{name}.yaml"), "-o", &format!("oci:{}", out.display())]);
        assert!(o.status.success(), "build: {}", stderr(&o));
        out
    }
}

#[test]
fn curl_in_the_image_trusts_the_corporate_ca_added_to_the_bundle() {
    for tool in ["curl", "ldd", "openssl", "umoci", "runc"] {
        if !have(tool) {
            return;
        }
    }
    if !is_root() {
        eprintln!("note: runc needs root here; skipped");
        return;
    }
    let key = deb::TestKey::new(17);
    let server = deb::Server::empty();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A "public" root the ca-certificates package ships, and the corporate
    // root that signs the server's certificate.
    make_ca(d, "public", "Strata Test Public Root");
    make_ca(d, "corp", "Strata Test Corporate Root");
    make_server_cert(d, "corp");
    fs_err::create_dir_all(d.join("www")).unwrap();
    fs_err::write(d.join("www/hello.txt"), "hello over TLS, signed by the corporate CA\n").unwrap();
    for f in ["srv.pem", "srv.key"] {
        fs_err::copy(d.join(f), d.join("www").join(f)).unwrap();
    }
    fs_err::create_dir_all(d.join("certs")).unwrap();
    fs_err::copy(d.join("corp.pem"), d.join("certs/corp-root.pem")).unwrap();
    fs_err::copy(d.join("corp.pem"), d.join("certs/corp-root.crt")).unwrap();
    let public = fs_err::read(d.join("public.pem")).unwrap();
    let packages = vec![
        host_curl_package(),
        deb::pkg("ca-certificates", "20230311").comp(deb::Comp::Gz).with(deb::Member::File(
            "./usr/share/ca-certificates/mozilla/Strata_Test_Public_Root.crt".into(),
            public.clone(),
            0o644,
        )),
    ];
    let archive = deb::publish(&server, &key, &packages);
    fs_err::write(d.join("archive-key.asc"), key.public_armored()).unwrap();
    let fx = Fixture { _server: server, dir, archive };
    let tls = TlsServer::start(&fx.path("www"));
    let url = format!("https://127.0.0.1:{}/hello.txt", tls.port);
    let curl =
        |layout: &Path| runc_run(layout, "t", fx.dir.path(), &["/usr/bin/curl", "-sS", "--max-time", "20", &url], true);

    // Without the corporate CA: curl refuses the server (exit 60).
    let plain = fx.image("plain", "", "");
    let (code, out, err) = curl(&plain);
    assert_eq!(code, 60, "curl must not trust the server yet: {out}{err}");
    assert!(err.contains("certificate"), "{err}");

    // The recipe: a later layer with `ca_certificates:`.
    let corp = fx.image("corp", "", "  - name: corporate-ca\n    ca_certificates: [certs/corp-root.pem]\n");
    let (code, out, err) = curl(&corp);
    assert_eq!((code, out.as_str()), (0, "hello over TLS, signed by the corporate CA\n"), "{err}");
    let layers = layout_entries(&corp);
    let bundle = &layers[1]["etc/ssl/certs/ca-certificates.crt"];
    let corp_pem = fs_err::read(fx.path("corp.pem")).unwrap();
    assert_eq!(bundle.4, [public.clone(), corp_pem.clone()].concat(), "the base, then the local certificate");
    assert_eq!(layers[1]["usr/local/share/ca-certificates/corp-root.crt"].4, corp_pem);

    // A certificate placed in /usr/local/share/ca-certificates in the
    // Debian layer itself counts the same.
    let same = fx.image(
        "same-layer",
        "    files:\n      - {path: /usr/local/share/ca-certificates/corp-root.crt, source: certs/corp-root.crt}\n",
        "",
    );
    let (code, out, err) = curl(&same);
    assert_eq!((code, out.as_str()), (0, "hello over TLS, signed by the corporate CA\n"), "{err}");
}
