//! The registry layer cache with a `python:` source, whose planning reads
//! every wheel: runner A records the plan and the layers, runner B (an
//! empty local cache) builds the same image without downloading a wheel.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;
use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

/// A loopback server for files put into it; remembers the paths asked for.
struct Server {
    base: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    let mut x = String::new();
                    if r.read_line(&mut x).is_err() || x == "\r\n" || x.is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                h.lock().unwrap().push(path.clone());
                match f.lock().unwrap().get(&path).cloned() {
                    Some(b) => {
                        let _ =
                            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
                        let _ = s.write_all(&b);
                    }
                    None => {
                        let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        Server { base, files, hits }
    }

    fn put(&self, name: &str, bytes: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(name.to_string(), bytes);
        format!("{}/{name}", self.base)
    }
}

/// A zip of stored (uncompressed) members.
fn zip(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in members {
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x50]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x50]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&((0o100644u32) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A pure-Python wheel `dist-version-py3-none-any.whl` with a correct RECORD.
fn wheel(dist: &str, version: &str, n: usize) -> (String, Vec<u8>) {
    let info = format!("{dist}-{version}.dist-info");
    let mut m = vec![
        (format!("{dist}/__init__.py"), format!("VERSION = '{version}'\n").into_bytes()),
        (format!("{dist}/data.bin"), pseudo_random(n as u64, n)),
        (format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n").into_bytes()),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: strata-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    let mut record = String::new();
    for (name, data) in &m {
        let h = strata::sources::python::zip::b64_encode(&sha2::Sha256::digest(data));
        record.push_str(&format!("{name},sha256={h},{}\n", data.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    m.push((format!("{info}/RECORD"), record.into_bytes()));
    (format!("{dist}-{version}-py3-none-any.whl"), zip(&m))
}

/// A pylock.toml pinning `(name, version, url, bytes)`.
fn pylock(entries: &[(String, String, String, Vec<u8>)]) -> String {
    let mut s = String::from("lock-version = \"1.0\"\ncreated-by = \"strata-tests\"\nrequires-python = \">=3.11\"\n");
    for (name, version, url, bytes) in entries {
        s.push_str(&format!(
            "\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nwheels = [{{ url = \"{url}\", size = {}, hashes = {{ sha256 = \"{}\" }} }}]\n",
            bytes.len(),
            hex::encode(sha2::Sha256::digest(bytes))
        ));
    }
    s
}

#[test]
fn a_python_layer_set_is_shared_without_downloading_a_wheel() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let server = Server::start();
    let mut env_a = Env::new();
    let mut env_b = Env::new();
    for e in [&mut env_a, &mut env_b] {
        e.set("STRATA_REGISTRY_USER", USER);
        e.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
    }
    let mut entries = Vec::new();
    for (dist, version, n) in [("alpha", "1.0", 60_000), ("beta", "2.0", 30_000), ("gamma", "0.1", 5_000)] {
        let (file, bytes) = wheel(dist, version, n);
        let url = server.put(&file, bytes.clone());
        entries.push((dist.to_string(), version.to_string(), url, bytes));
    }
    std::fs::write(env_a.path("pylock.toml"), pylock(&entries)).unwrap();
    let spec = env_a.path("spec.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: py\ntag: \"1\"\nepoch: 1700000000\nlayers:\n  - name: base\n    dirs: [{path: /tmp, mode: \"1777\"}]\n  - name: python\n    python:\n      lock: pylock.toml\n      requirements: [alpha]\n      split: {own_layer_min_bytes: 20000, groups: 2}\n",
    )
    .unwrap();
    let spec = spec.display().to_string();
    let cache = format!("{}/ci/strata-cache", reg.host());

    let a = env_a.json(&["build", &spec, "-o", &format!("oci:{}", env_a.path("a").display()), "--cache-to", &cache]);
    let layers = a["layers"].as_array().unwrap().len();
    assert!(layers >= 3, "the wheels should split into several layers: {a}");
    assert_eq!(a["registry_cache"]["written"], layers, "{a}");
    let wheel_gets = |s: &Server| s.hits.lock().unwrap().iter().filter(|p| p.ends_with(".whl")).count();
    assert_eq!(wheel_gets(&server), 3);

    let b = env_b.json(&["build", &spec, "-o", &format!("oci:{}", env_b.path("b").display()), "--cache-from", &cache]);
    assert_eq!(b["manifest_digest"], a["manifest_digest"], "the registry cache changed the digest");
    assert_eq!(wheel_gets(&server), 3, "runner B downloaded wheels");
    assert_eq!(b["fetch"]["downloaded"], 0, "{b}");
    assert_eq!(b["registry_cache"]["hits"], layers, "{b}");
    // The SBOMs (from the recorded plan's packages) are the same too.
    let sbom = |e: &Env, d: &str| {
        let o = e.run(&["inspect", "--sbom", &format!("oci:{}:1", e.path(d).display())]);
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    assert_eq!(sbom(&env_a, "a"), sbom(&env_b, "b"));

    // A changed wheel set misses the plan entry and downloads again.
    let (file, bytes) = wheel("delta", "1.0", 1_000);
    let url = server.put(&file, bytes.clone());
    entries.push(("delta".into(), "1.0".into(), url, bytes));
    std::fs::write(env_a.path("pylock.toml"), pylock(&entries)).unwrap();
    let env_c = {
        let mut e = Env::new();
        e.set("STRATA_REGISTRY_USER", USER);
        e.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
        e
    };
    let c = env_c.json(&["build", &spec, "-o", &format!("oci:{}", env_c.path("c").display()), "--cache-from", &cache]);
    assert_ne!(c["manifest_digest"], a["manifest_digest"]);
    assert_eq!(wheel_gets(&server), 7, "a new wheel set is downloaded: {c}");
}
