//! Shared helpers for integration tests: running the binary, a loopback HTTP
//! server for fixtures (and for faults a real server does not produce), tool
//! discovery, small tar builders.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The strata binary under test.
pub fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("STRATA_THREADS").env_remove("STRATA_CACHE");
    c
}

/// Runs and returns the output; panics with both streams on spawn failure.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when `tool` is on PATH. With STRATA_REQUIRE_TOOLS=1 a missing tool
/// fails the test instead of skipping it.
pub fn have(tool: &str) -> bool {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
            || Path::new("/usr/sbin").join(tool).is_file();
    if !found {
        if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{tool} is required (STRATA_REQUIRE_TOOLS=1) but not installed");
        }
        eprintln!("note: {tool} not installed; skipping the part of this test that needs it");
    }
    found
}

/// What the server does for one path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with the body.
    Body(Vec<u8>),
    /// 200 with a Content-Type (e.g. a package index page).
    Typed(&'static str, Vec<u8>),
    /// A status with an empty body.
    Status(u16),
    /// Sends a Content-Length of the full body but only `n` bytes, then closes.
    Truncated(Vec<u8>, usize),
    /// Fails with `status` for the first `n` requests, then serves the body.
    FlakyThen(u16, usize, Vec<u8>),
    /// Accepts the request and answers nothing for this long (a stalled server).
    Silent(std::time::Duration),
    /// 200 with the body, one byte every `interval` (a server that drip-feeds).
    Drip(Vec<u8>, std::time::Duration),
}

/// The one loopback HTTP/1.1 server of the tests: fixed replies by path (GET
/// and HEAD), changeable while it runs, every request counted. The fault
/// replies are for failures a real server does not produce on demand.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The same as `addr` (the name the Debian and wheel fixtures use).
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// A server answering `routes` (paths start with `/`).
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(Mutex::new(routes));
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r2, l2) = (routes.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (routes, log) = (r2.clone(), l2.clone());
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Server { base: addr.clone(), addr, routes, log }
    }

    /// A server with nothing to serve yet.
    pub fn empty() -> Server {
        Server::start(HashMap::new())
    }

    fn key(path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        }
    }

    /// Serves `bytes` at `path` (with or without the leading `/`); returns its URL.
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> String {
        self.reply(path, Reply::Body(bytes))
    }

    /// Serves `bytes` with a Content-Type; returns its URL.
    pub fn put_typed(&self, path: &str, content_type: &'static str, bytes: Vec<u8>) -> String {
        self.reply(path, Reply::Typed(content_type, bytes))
    }

    /// Serves any reply at `path`; returns its URL.
    pub fn reply(&self, path: &str, reply: Reply) -> String {
        let key = Server::key(path);
        self.routes.lock().unwrap().insert(key.clone(), reply);
        format!("{}{key}", self.addr)
    }

    /// The body served at `path`, if it is an ordinary reply.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.routes.lock().unwrap().get(&Server::key(path)) {
            Some(Reply::Body(b) | Reply::Typed(_, b)) => Some(b.clone()),
            _ => None,
        }
    }

    /// Stops serving `path` (it answers 404 from now on).
    pub fn remove(&self, path: &str) {
        self.routes.lock().unwrap().remove(&Server::key(path));
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        let want = Server::key(path);
        self.log.lock().unwrap().iter().filter(|l| l.split_once(' ').is_some_and(|(_, p)| p == want)).count()
    }

    /// How many requests the server has seen, for any path.
    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

fn serve(mut stream: std::net::TcpStream, routes: &Mutex<HashMap<String, Reply>>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_string();
    let path = words.next().unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let n = {
        let mut l = log.lock().unwrap();
        l.push(format!("{method} {path}"));
        l.iter().filter(|x| x.split_once(' ').is_some_and(|(_, p)| p == path)).count()
    };
    let head = method == "HEAD";
    let send = |s: &mut std::net::TcpStream, status: u16, ctype: Option<&str>, body: &[u8], declared: usize| {
        let ctype = ctype.map(|t| format!("Content-Type: {t}\r\n")).unwrap_or_default();
        let _ = write!(s, "HTTP/1.1 {status} X\r\n{ctype}Content-Length: {declared}\r\nConnection: close\r\n\r\n");
        if !head {
            let _ = s.write_all(body);
        }
        let _ = s.flush();
    };
    let reply = routes.lock().unwrap().get(&path).cloned();
    match reply {
        None => send(&mut stream, 404, None, b"", 0),
        Some(Reply::Body(b)) => send(&mut stream, 200, None, &b, b.len()),
        Some(Reply::Typed(t, b)) => send(&mut stream, 200, Some(t), &b, b.len()),
        Some(Reply::Status(s)) => send(&mut stream, s, None, b"", 0),
        Some(Reply::Truncated(b, k)) => send(&mut stream, 200, None, &b[..k], b.len()),
        Some(Reply::FlakyThen(s, k, b)) => {
            if n <= k {
                send(&mut stream, s, None, b"", 0)
            } else {
                send(&mut stream, 200, None, &b, b.len())
            }
        }
        Some(Reply::Silent(d)) => std::thread::sleep(d),
        Some(Reply::Drip(b, interval)) => {
            let _ = write!(stream, "HTTP/1.1 200 X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
            for byte in &b {
                if stream.write_all(&[*byte]).and_then(|_| stream.flush()).is_err() {
                    break; // the client hung up
                }
                std::thread::sleep(interval);
            }
        }
    }
    // Let the client read everything before the connection goes away.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

/// A tar entry for fixture archives built with raw headers (so tests can
/// write things a well-behaved writer refuses, like `../` paths).
pub enum TarItem<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// Builds an uncompressed tar with GNU-style raw headers, no validation.
pub fn raw_tar(items: &[TarItem<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data, mode, link): (&str, tar::EntryType, &[u8], u32, Option<&str>) = match item {
            TarItem::File(n, d, m) => (n, tar::EntryType::Regular, d, *m, None),
            TarItem::Dir(n) => (n, tar::EntryType::Directory, b"", 0o755, None),
            TarItem::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", 0o777, Some(t)),
            TarItem::Hardlink(n, t) => (n, tar::EntryType::Link, b"", 0o644, Some(t)),
        };
        // Write the name bytes directly: set_path would refuse `..`.
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Unpacks an OCI layout with umoci and runs the bundle with runc; returns
/// (status, stdout, stderr).
pub fn umoci_runc(layout: &Path, tag: &str, work: &Path) -> (i32, String, String) {
    let bundle = work.join("bundle");
    let o =
        run(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    assert!(o.status.success(), "umoci unpack failed: {}", stderr(&o));
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs_err::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    fs_err::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!("strata-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let o = run(Command::new("runc").arg("run").arg(&id).current_dir(&bundle));
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

pub fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    fs_err::File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// Writes `big.yaml`, a spec of one 16 MiB text file (`big.txt`), into `dir`:
/// about three seconds of work for a debug build, long enough for tests that
/// act while a build runs. Returns the spec's path.
pub fn slow_spec(dir: &Path) -> PathBuf {
    let mut data = vec![0u8; 16 << 20];
    let mut x: u64 = 0x2545F4914F6CDD1D;
    for (i, chunk) in data.chunks_mut(8).enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = if (i * 8 + j) % 64 == 63 { b'\n' } else { b'a' + ((x >> (j * 4)) & 15) as u8 };
        }
    }
    fs_err::write(dir.join("big.txt"), &data).unwrap();
    let spec = dir.join("big.yaml");
    fs_err::write(
        &spec,
        "version: 1\nname: big\nlayers:\n  - files:\n      - {path: /data/big.txt, source: big.txt}\n",
    )
    .unwrap();
    spec
}

/// Runs `strata build --json SPEC -o OUTPUT --cache CACHE`, which must
/// succeed, and returns its summary and what it printed on stderr.
pub fn build_json(spec: &Path, output: &str, cache: &Path) -> (serde_json::Value, String) {
    let o = run(strata().args(["build", "--json"]).arg(spec).arg("-o").arg(output).arg("--cache").arg(cache));
    assert!(o.status.success(), "strata build {}: {}", spec.display(), stderr(&o));
    (serde_json::from_str(&stdout(&o)).unwrap(), stderr(&o))
}

/// `strata ARGS` inside a network namespace with no interfaces (`unshare -n`
/// as root, `unshare -rn` otherwise); `None` (with a note) where namespaces
/// cannot be made, a failure with STRATA_REQUIRE_TOOLS=1.
pub fn unshare_net(cmd_args: &[&str]) -> Option<Command> {
    if !have("unshare") {
        return None;
    }
    let mut c = Command::new("unshare");
    // As root a plain network namespace; otherwise map root in a user namespace.
    let root = fs_err::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    c.arg(if root { "-n" } else { "-rn" });
    c.arg("--").arg(env!("CARGO_BIN_EXE_strata")).args(cmd_args);
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("STRATA_CACHE");
    // Probe: can we create namespaces here at all?
    let ok = Command::new("unshare")
        .arg(if root { "-n" } else { "-rn" })
        .arg("true")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("unshare cannot create a network namespace here");
        }
        eprintln!("note: cannot create network namespaces; skipping");
        return None;
    }
    Some(c)
}

/// A 212-byte static x86-64 `cat FILE` (from tests/fixtures/make-cat-elf.py):
/// a program that runs in an image without any library, to show from inside a
/// container that a file is where it should be.
pub fn cat_elf() -> Vec<u8> {
    hex::decode("7f454c4602010100000000000000000002003e0001000000780040000000000040000000000000000000000000000000000000004000380001000000000000000100000005000000000000000000000000004000000000000000400000000000d400000000000000d40000000000000000100000000000004881ec00100000488bbc241010000031f6b8020000000f0585c078344189c44489e74889e6ba0010000031c00f0585c0781e741389c2bf010000004889e6b8010000000f05ebd831ffb83c0000000f05bf01000000b83c0000000f05").unwrap()
}

/// The entries of one layer: path → (type, mode, uid, gid, content or link target).
pub type LayerEntries = BTreeMap<String, (char, u32, u64, u64, Vec<u8>)>;

/// Every entry of every layer of an OCI layout, in layer order (later
/// layers overwrite earlier ones in the map): path → (type `d`/`f`/`l`/`h`,
/// mode, uid, gid, content or link target). Read with tar and flate2 only.
pub fn layout_entries(layout: &Path) -> Vec<LayerEntries> {
    let json = |p: PathBuf| -> serde_json::Value { serde_json::from_slice(&fs_err::read(p).unwrap()).unwrap() };
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let index = json(layout.join("index.json"));
    let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let mut files = BTreeMap::new();
        let raw = fs_err::read(blob(l["digest"].as_str().unwrap())).unwrap();
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&raw[..]));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = String::from_utf8_lossy(&e.path_bytes()).trim_end_matches('/').to_string();
            let h = e.header().clone();
            let t = h.entry_type();
            let (c, data) = if t.is_symlink() || t.is_hard_link() {
                (if t.is_symlink() { 'l' } else { 'h' }, e.link_name_bytes().unwrap().to_vec())
            } else if t.is_dir() {
                ('d', vec![])
            } else {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                ('f', d)
            };
            files.insert(p, (c, h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), data));
        }
        out.push(files);
    }
    out
}

/// True when this process runs as root (runc needs it here).
pub fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Unpacks `layout:tag` with umoci and runs it under runc with `args` as
/// the process (the image's own entrypoint and cmd when empty); with
/// `host_network` the container shares the host's network (to reach a
/// loopback server). Returns the exit code, stdout and stderr.
pub fn runc_run(layout: &Path, tag: &str, work: &Path, args: &[&str], host_network: bool) -> (i32, String, String) {
    let bundle = work.join(format!("bundle-{}", N_BUNDLE.fetch_add(1, Ordering::Relaxed)));
    let o =
        run(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    assert!(o.status.success(), "umoci unpack failed: {}", stderr(&o));
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs_err::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    if !args.is_empty() {
        cfg["process"]["args"] = serde_json::json!(args);
    }
    if host_network {
        if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }
    fs_err::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = format!("strata-test-{}-{}", std::process::id(), N_BUNDLE.fetch_add(1, Ordering::Relaxed));
    let o = run(Command::new("runc").arg("run").arg(&id).current_dir(&bundle));
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

static N_BUNDLE: AtomicUsize = AtomicUsize::new(0);

/// True (after a note) when a build failed only because the archive has
/// dropped a pinned artifact since it was locked (a superseded .deb): the
/// tests that build real Debian images test the image, not today's archive.
pub fn pin_gone_from_archive(o: &Output, lock: &str) -> bool {
    let err = String::from_utf8_lossy(&o.stderr);
    let gone = !o.status.success() && err.contains(": HTTP 404") && err.contains("the file is gone from this URL");
    if gone {
        eprintln!("note: skipping: a pinned artifact of {lock} is gone from the archive; re-lock it\n{err}");
    }
    gone
}

/// The path of `name` on PATH, if it is there.
pub fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Notes that a test is skipped because `what` is missing; with
/// STRATA_REQUIRE_TOOLS=1 it fails instead. Always false (for `return`).
pub fn require_or_skip(what: &str) -> bool {
    if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{what} is required (STRATA_REQUIRE_TOOLS=1)");
    }
    eprintln!("note: skipping: {what} is not available");
    false
}

/// For the tests that build real Debian images: true (after a note) when
/// `spec`'s pinned artifacts are not all in the default cache and
/// STRATA_NET_TESTS=1 does not allow downloading them.
pub fn pinned_artifacts_unavailable(spec: &strata::spec::LoadedSpec, lock: &strata::lock::Lock) -> bool {
    let cache = strata::store::Store::default_root();
    let store = strata::store::Store::open(&cache).unwrap();
    let missing = strata::build::artifacts_of(spec, Some(lock)).iter().filter(|a| !store.contains(&a.sha256)).count();
    if missing > 0 && std::env::var("STRATA_NET_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "note: skipping: {missing} pinned artifacts are not cached in {} (set STRATA_NET_TESTS=1 to download them)",
            cache.display()
        );
        return true;
    }
    false
}

/// The provenance of the first image of an OCI layout: its DSSE envelope and
/// the in-toto statement inside, found through the layout's referrers
/// annotation.
pub fn provenance_in_layout(layout: &Path) -> (serde_json::Value, serde_json::Value) {
    let blob = |d: &str| fs_err::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let refs = index["manifests"][0]["annotations"]["dev.strata.referrers"].as_str().unwrap_or_default().to_string();
    let envelope = refs
        .split(' ')
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_slice::<serde_json::Value>(&blob(d)).unwrap())
        .find(|m| m["artifactType"] == "application/vnd.dsse.envelope.v1+json")
        .unwrap_or_else(|| panic!("no provenance referrer in {index:#}"));
    let env: serde_json::Value =
        serde_json::from_slice(&blob(envelope["layers"][0]["digest"].as_str().unwrap())).unwrap();
    use base64::Engine as _;
    let stmt: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(env["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    (env, stmt)
}
