//! Test harness for strata's registry client.
//!
//! The tests talk to the real thing: Debian's `docker-registry`
//! (distribution 2.8.2) started on free 127.0.0.1 ports, open, with
//! htpasswd basic auth, or with token auth — the token server is
//! [`token::TokenServer`], written here in Rust (ES256 JWTs that the
//! registry verifies against a committed test-only certificate). Results
//! are judged independently with `skopeo`, `umoci` and `runc`.
//!
//! The only fake is [`proxy::FaultProxy`]: a small HTTP proxy in front of
//! the real registry that injects faults real registries and networks
//! produce (dropped connections, 5xx, 429 with Retry-After, redirects to
//! another port, relative Locations, expiring tokens, body-size caps). It
//! forwards everything else unchanged, so what is stored is still judged
//! by the real registry.
//!
//! Tools: a test that needs a missing tool prints a note and returns; with
//! `STRATA_REQUIRE_TOOLS=1` it fails instead.

pub mod proxy;
pub mod registry;
pub mod token;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

pub use registry::TestRegistry;

/// The htpasswd user of the test registries.
pub const USER: &str = "strata-tester";
/// Its password (bcrypt cost 4 in [`HTPASSWD`]).
pub const PASSWORD: &str = "correct-horse-9f3b";
/// `USER:bcrypt(PASSWORD)`.
pub const HTPASSWD: &str = "strata-tester:$2b$04$NQaMm3JDurPB1xNAGGCfOOQArcXz/URe5sAv1UX6epRlHIygBOgma";

/// Finds a tool on PATH (or in the usual sbin directories).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when every tool is present. Otherwise: with `STRATA_REQUIRE_TOOLS=1`
/// panics (the test fails), else prints a note (the test should return).
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| which(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing tools: {} (install: apt-get install -y docker-registry skopeo umoci runc)",
        missing.join(", ")
    );
    if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{msg}; STRATA_REQUIRE_TOOLS=1 forbids skipping");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("..")).to_path_buf()
}

fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let t =
                if p.is_dir() { newest_mtime(&p) } else { e.metadata().and_then(|m| m.modified()).unwrap_or(newest) };
            newest = newest.max(t);
        }
    }
    newest
}

/// The `strata` binary under test: `$STRATA_BIN`, else the workspace's
/// debug build, (re)built with `cargo build -p strata` when it is missing
/// or older than the sources.
pub fn strata_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STRATA_BIN") {
            return PathBuf::from(p);
        }
        // target/debug/deps/<test> → target/debug/strata
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let bin = dir.join("strata");
        let src = newest_mtime(&workspace().join("src")).max(newest_mtime(&workspace().join("Cargo.toml")));
        let fresh = std::fs::metadata(&bin).and_then(|m| m.modified()).map(|t| t >= src).unwrap_or(false);
        if !fresh {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "-p", "strata", "--bin", "strata"])
                .current_dir(workspace())
                .status()
                .expect("running cargo build -p strata");
            assert!(st.success(), "cargo build -p strata failed");
        }
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// An isolated environment for running strata: its own cache, HOME and
/// no inherited auth files or registry variables.
pub struct Env {
    /// Temporary directory holding everything.
    pub dir: tempfile::TempDir,
    /// Extra variables.
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// A fresh environment.
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("strata-regtest-").tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Env { dir, vars: Vec::new() }
    }

    /// The cache directory.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A path inside the environment.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Sets a variable for every later command.
    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.push((k.into(), v.into()));
    }

    /// A `strata` command in this environment.
    pub fn strata(&self, args: &[&str]) -> Command {
        let mut c = Command::new(strata_bin());
        c.args(args)
            .env("STRATA_CACHE", self.cache())
            .env("HOME", self.dir.path().join("home"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("STRATA_REGISTRY_USER")
            .env_remove("STRATA_REGISTRY_PASSWORD")
            .env_remove("STRATA_LOG")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Runs strata; returns the output (not checked).
    pub fn run(&self, args: &[&str]) -> Output {
        self.strata(args).output().expect("running strata")
    }

    /// Runs strata and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "strata {} failed:\n{}", args.join(" "), text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The error of a failed command as a snapshot shows it: stderr from
    /// its `error:` line on (progress lines before it depend on timing),
    /// this environment's home as `[HOME]`, its directory as `[DIR]`,
    /// loopback ports as `[PORT]`.
    pub fn scrub(&self, o: &Output) -> String {
        let all = String::from_utf8_lossy(&o.stderr);
        let s = &all[all.find("error:").unwrap_or(0)..];
        let home = self.dir.path().join("home").display().to_string();
        let s = s.replace(&home, "[HOME]").replace(&self.dir.path().display().to_string(), "[DIR]");
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find("127.0.0.1:") {
            out.push_str(&rest[..i + 10]);
            rest = &rest[i + 10..];
            let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            out.push_str(if n > 0 { "[PORT]" } else { "" });
            rest = &rest[n..];
        }
        out.push_str(rest);
        out
    }

    /// Runs strata with `--json` appended and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("strata {}: not JSON ({e}):\n{out}", a.join(" ")))
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// stdout and stderr together, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The last line of stdout (strata prints the digest last).
pub fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").trim().to_string()
}

/// Deterministic incompressible bytes (xorshift), fast enough for tens of MiB.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Test images built once per test binary, by name.
fn built() -> &'static Mutex<HashMap<String, (PathBuf, String)>> {
    static B: OnceLock<Mutex<HashMap<String, (PathBuf, String)>>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(HashMap::new()))
}

fn images_dir() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::Builder::new().prefix("strata-regtest-images-").tempdir().expect("tempdir")).path()
}

/// The hello image (`specs/hello.yaml`) as an OCI layout: (dir, digest).
pub fn hello_image() -> (PathBuf, String) {
    image_from_spec("hello", &workspace().join("specs/hello.yaml"))
}

fn image_from_spec(name: &str, spec: &Path) -> (PathBuf, String) {
    let mut map = built().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = map.get(name) {
        return v.clone();
    }
    let dir = images_dir().join(name);
    let env = Env::new();
    // Big images include a layer file beside their spec's directory: the
    // images directory is their build context.
    let context = images_dir();
    let out = env.ok(&[
        "build",
        spec.to_str().unwrap(),
        "--context",
        context.to_str().unwrap(),
        "-o",
        &format!("oci:{}", dir.display()),
        "-q",
    ]);
    let v = (dir, last_line(&out));
    map.insert(name.to_string(), v.clone());
    v
}

/// An image with the hello layers plus one uncompressed layer holding
/// `mib` MiB of random bytes (seeded): big enough to cut mid-blob.
pub fn big_image(name: &str, mib: usize, seed: u64) -> (PathBuf, String) {
    // Tests run in parallel: one writer of the spec files at a time.
    static WRITING: Mutex<()> = Mutex::new(());
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let spec_dir = images_dir().join(format!("{name}-spec"));
    std::fs::create_dir_all(&spec_dir).unwrap();
    let data = spec_dir.join("payload.bin");
    if !data.exists() {
        std::fs::write(&data, pseudo_random(seed, mib << 20)).unwrap();
    }
    let hello = workspace().join("specs/hello.yaml");
    let spec = spec_dir.join("image.yaml");
    let mut f = std::fs::File::create(&spec).unwrap();
    write!(
        f,
        "version: 1\nname: {name}\ntag: \"1\"\nepoch: 1700000000\ncompression: {{algorithm: none}}\nlayers:\n  - include: {}\n  - name: payload\n    files:\n      - {{path: /data/payload.bin, source: payload.bin}}\nconfig:\n  entrypoint: [/hello]\n",
        hello_layers_file(&hello).display()
    )
    .unwrap();
    drop(f);
    image_from_spec(name, &spec)
}

/// A layer file with the hello spec's layers (so big images share them).
fn hello_layers_file(hello: &Path) -> PathBuf {
    let p = images_dir().join("hello-layers.yaml");
    if !p.exists() {
        let text = std::fs::read_to_string(hello).expect("specs/hello.yaml");
        // Keep only the `layers:` list of the hello spec.
        let mut out = String::from("version: 1\ndescription: hello layers\n");
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("layers:") {
                inside = true;
            } else if inside && !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
                inside = false;
            }
            if inside {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(&p, out).unwrap();
    }
    p
}

/// skopeo with a permissive policy file of its own.
pub fn skopeo(args: &[&str]) -> Output {
    let policy = images_dir().join("policy.json");
    if !policy.exists() {
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    }
    let mut a = vec!["--policy".to_string(), policy.display().to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    Command::new("skopeo").args(&a).stdin(Stdio::null()).output().expect("running skopeo")
}

/// sha256 of the manifest skopeo reads for `docker://REF`.
pub fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut a = vec!["inspect", "--raw", "--tls-verify=false"];
    match creds {
        Some(c) => {
            a.push("--creds");
            a.push(c);
        }
        None => a.push("--no-creds"),
    }
    let r = format!("docker://{reference}");
    a.push(&r);
    let o = skopeo(&a);
    assert!(o.status.success(), "skopeo inspect {reference}:\n{}", text(&o));
    strata::digest::Digest::of(&o.stdout).to_string()
}

/// Copies `docker://REF` to an OCI layout with skopeo, unpacks it with umoci
/// and runs its entrypoint with runc; returns the program's output.
pub fn run_image(reference: &str, creds: Option<&str>, work: &Path) -> String {
    let layout = work.join("skopeo-layout");
    let bundle = work.join("bundle");
    let _ = std::fs::remove_dir_all(&layout);
    let _ = std::fs::remove_dir_all(&bundle);
    let r = format!("docker://{reference}");
    let dst = format!("oci:{}:run", layout.display());
    let mut a = vec!["copy", "--src-tls-verify=false"];
    if let Some(c) = creds {
        a.push("--src-creds");
        a.push(c);
    }
    a.push(&r);
    a.push(&dst);
    let o = skopeo(&a);
    assert!(o.status.success(), "skopeo copy:\n{}", text(&o));
    let rootless = !is_root();
    let mut u = Command::new("umoci");
    u.arg("unpack");
    if rootless {
        u.arg("--rootless");
    }
    let o = u.arg("--image").arg(format!("{}:run", layout.display())).arg(&bundle).output().expect("umoci");
    assert!(o.status.success(), "umoci unpack:\n{}", text(&o));
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id =
        format!("strata-regtest-{}-{}", std::process::id(), work.file_name().and_then(|n| n.to_str()).unwrap_or("x"));
    let mut rc = Command::new(which("runc").expect("runc"));
    if rootless {
        rc.arg("--root").arg(work.join("runc-root"));
    }
    let o = rc.args(["run", "-b"]).arg(&bundle).arg(&id).stdin(Stdio::null()).output().expect("runc");
    assert!(o.status.success(), "runc run:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// True when running as root.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Every blob of the manifest behind `reference` is in the registry, or the
/// tag does not exist: never a tag pointing at missing blobs.
pub fn assert_tag_consistent(reference: &str, creds: Option<(&str, &str)>) {
    use strata::registry::{Client, ClientOptions, CredentialOptions, Reference};
    let r = Reference::parse(reference).unwrap();
    let opts = ClientOptions {
        credentials: CredentialOptions {
            explicit: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            anonymous: creds.is_none(),
            ..Default::default()
        },
        retries: 1,
        ..ClientOptions::default()
    };
    let client = Client::new(opts, std::sync::Arc::new(strata::report::NullReporter)).unwrap();
    let m = match client.get_manifest(&r) {
        Ok(m) => m,
        Err(e) if e.status() == Some(404) => return, // no tag: fine
        Err(e) => panic!("reading {reference}: {e}"),
    };
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let mut blobs = vec![v["config"]["digest"].as_str().unwrap().to_string()];
    for l in v["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for b in blobs {
        let d = strata::digest::Digest::parse(&b).unwrap();
        assert!(
            client.blob_exists(&r, &d).unwrap(),
            "{reference} points at manifest {} whose blob {b} is missing",
            m.digest
        );
    }
}

/// A copy of the hello layout at `env.path("multi")` whose tag `multi`
/// names an OCI index over the hello image (`digest`); returns its path and
/// the index's digest.
pub fn index_layout(env: &Env, layout: &Path, digest: &str) -> (PathBuf, strata::digest::Digest) {
    let dir = env.path("multi");
    assert!(std::process::Command::new("cp").arg("-r").arg(layout).arg(&dir).status().unwrap().success());
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let size = index["manifests"][0]["size"].as_u64().unwrap();
    let inner = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "platform": {"architecture": "amd64", "os": "linux"}}],
    });
    let bytes = serde_json::to_vec(&inner).unwrap();
    let idx = strata::digest::Digest::of(&bytes);
    std::fs::write(dir.join("blobs/sha256").join(idx.hex()), &bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx.to_string(), "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (dir, idx)
}

/// A loopback HTTP server answering GET `path` with `body` (404 otherwise);
/// returns its base URL and how many times `path` was asked for.
pub fn serve_one(path: &'static str, body: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            if line.split_whitespace().nth(1) == Some(path) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(&body);
            } else {
                let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        }
    });
    (addr, hits)
}
