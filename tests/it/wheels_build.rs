//! `python:` sources end to end through the `strata` binary: wheels served
//! from a loopback server, split into layers, rebuilt byte for byte, one
//! bumped package changing one layer; the CUDA checks; `strata lock` with
//! a stand-in for uv; the flagship spec's settings.

use crate::wheels_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wheels_support::*;

fn strata(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.arg("--cache").arg(cache).arg("--quiet").env_remove("SOURCE_DATE_EPOCH");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn small(dist: &str, version: &str, extra: usize) -> Wheel {
    let mut w = Wheel::new(dist, version)
        .with(Member::file(
            &format!("{dist}/__init__.py"),
            format!("VERSION = '{version}'\ndef main():\n    return 0\n"),
            0o644,
        ))
        .with(Member::file(&format!("{dist}/data.bin"), vec![b'x'; extra], 0o644));
    w.entry_points = Some(format!("[console_scripts]\n{dist}-cli = {dist}:main\n"));
    w
}

/// Random-looking bytes (incompressible), so the wheel keeps its size.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

struct Project {
    dir: tempfile::TempDir,
    server: Server,
}

impl Project {
    fn new() -> Project {
        Project { dir: tempfile::tempdir().unwrap(), server: Server::empty() }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// Serves the wheels and writes pylock.toml pinning them by URL.
    fn lock(&self, wheels: &[&Wheel]) {
        let mut entries = Vec::new();
        let mut keep = Vec::new();
        for w in wheels {
            let bytes = w.bytes();
            let url = self.server.put(&w.file_name(), bytes.clone());
            keep.push((w.dist.replace('_', "-"), w.version.clone(), format!("url = \"{url}\""), bytes));
        }
        for (n, v, l, b) in &keep {
            entries.push((n.as_str(), v.as_str(), l.clone(), b.as_slice()));
        }
        fs_err::write(self.path("pylock.toml"), pylock(&entries)).unwrap();
    }
    fn spec(&self, extra: &str) -> PathBuf {
        let p = self.path("spec.yaml");
        fs_err::write(
            &p,
            format!(
                "version: 1\nname: py\ntag: \"1\"\nepoch: 1700000000\nlayers:\n  - name: python\n    python:\n      lock: pylock.toml\n      requirements: [alpha]\n      split: {{own_layer_min_bytes: 20000, groups: 3}}\n{extra}"
            ),
        )
        .unwrap();
        p
    }
    fn build(&self, cache: &Path, out: &str) -> Output {
        strata(cache)
            .arg("build")
            .arg(self.path("spec.yaml"))
            .arg("-o")
            .arg(format!("oci:{}", self.path(out).display()))
            .output()
            .unwrap()
    }
    fn redact(&self, s: &str) -> String {
        s.replace(&self.dir.path().display().to_string(), "TMP").replace(&self.server.base, "http://SERVER")
    }
}

fn by_name(layers: &[Layer]) -> BTreeMap<String, String> {
    layers.iter().map(|l| (l.name.clone(), l.digest.clone())).collect()
}

#[test]
fn wheels_build_into_split_layers_reproducibly() {
    let p = Project::new();
    let mut big = small("big", "1.0", 0);
    big.members.push(Member::file("big/blob.bin", noise(40_000, 7), 0o644));
    let nv_a = Wheel::new("nvidia_a_cu12", "1.0")
        .with(Member::file("nvidia/__init__.py", "", 0o644))
        .with(Member::file("nvidia/a/lib/liba.so.1", noise(100, 1), 0o755));
    let nv_b = Wheel::new("nvidia_b_cu12", "1.0")
        .with(Member::file("nvidia/__init__.py", "", 0o644))
        .with(Member::file("nvidia/b/lib/libb.so.1", noise(100, 2), 0o755));
    let wheels = [
        small("alpha", "1.0", 10),
        small("beta", "1.0", 20),
        small("gamma", "1.0", 30),
        small("delta", "1.0", 40),
        big,
        nv_a,
        nv_b,
    ];
    let refs: Vec<&Wheel> = wheels.iter().collect();
    p.lock(&refs);
    p.spec("");
    let cache = p.path("cache");
    let o = p.build(&cache, "one");
    assert!(o.status.success(), "{}", stderr(&o));
    let (digest, config, layers) = read_layout(&p.path("one"));
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names[0], "python/big", "{names:?}");
    assert!(names[1..].iter().all(|n| n.starts_with("python/group-")), "{names:?}");

    // Every wheel landed once; shared identical files are in each layer that needs them.
    let all: BTreeMap<&String, &(char, u32, Vec<u8>)> = layers.iter().flat_map(|l| l.entries.iter()).collect();
    let sp = "usr/local/lib/python3.11/dist-packages";
    assert_eq!(all[&format!("{sp}/alpha-1.0.dist-info/INSTALLER")].2, b"strata\n");
    assert!(all.contains_key(&format!("{sp}/alpha-1.0.dist-info/REQUESTED")), "alpha is a top-level requirement");
    assert!(!all.contains_key(&format!("{sp}/beta-1.0.dist-info/REQUESTED")), "beta is not");
    let launcher = &all[&"usr/local/bin/alpha-cli".to_string()];
    assert_eq!(launcher.1 & 0o777, 0o755);
    assert!(launcher.2.starts_with(b"#!/usr/bin/python3.11\n"));
    assert_eq!(all[&format!("{sp}/nvidia/a/lib/liba.so.1")].1 & 0o777, 0o755, "exec bits kept");
    assert!(all.contains_key(&format!("{sp}/nvidia/__init__.py")));
    assert!(!all.keys().any(|k| k.ends_with(".pyc")));
    assert_eq!(config["config"]["Labels"]["dev.strata.gpu.cuda"], serde_json::Value::Null);

    // Same inputs, fresh cache: same digest; downloads happened once per cache.
    let hits = p.server.requests();
    assert_eq!(hits, wheels.len());
    let o = p.build(&p.path("cache2"), "two");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_layout(&p.path("two")).0, digest);
    let o = p.build(&cache, "three");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_layout(&p.path("three")).0, digest);
    assert_eq!(p.server.requests(), 2 * wheels.len(), "a warm cache downloads nothing");

    // Bump one small package: only the layer holding it changes.
    let mut bumped: Vec<Wheel> = wheels.to_vec();
    bumped[1] = small("beta", "1.1", 21);
    p.lock(&bumped.iter().collect::<Vec<_>>());
    let o = p.build(&cache, "four");
    assert!(o.status.success(), "{}", stderr(&o));
    let before = by_name(&layers);
    let (_, _, after_layers) = read_layout(&p.path("four"));
    let after = by_name(&after_layers);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "same layer set");
    let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(changed.len(), 1, "only beta's layer changes: {changed:?}");
    let layer = after_layers.iter().find(|l| &l.name == changed[0]).unwrap();
    assert!(layer.entries.contains_key(&format!("{sp}/beta-1.1.dist-info/METADATA")));
}

#[test]
fn record_mismatch_fails_the_build_with_the_member_named() {
    let p = Project::new();
    let mut w = small("alpha", "1.0", 10);
    w.record_override.insert("alpha/data.bin".into(), record_hash(b"other"));
    p.lock(&[&w]);
    p.spec("");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

/// Members of 16 KiB and more are spliced into the gzip layer as they are
/// (docs/reproducibility.md); they are checked on that path too.
#[test]
fn spliced_members_are_checked_against_record_and_their_size() {
    let text: Vec<u8> = (0..4000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
    assert!(text.len() >= 16 * 1024);
    let p = Project::new();
    let mut w = small("alpha", "1.0", 10).with(Member::file("alpha/big.txt", &text, 0o644));
    w.record_override.insert("alpha/big.txt".into(), record_hash(b"other"));
    p.lock(&[&w]);
    p.spec("");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!("spliced_record_mismatch", p.redact(&stderr(&o)));

    // A member whose stream inflates far past its declared (and RECORDed) size.
    let p = Project::new();
    let mut bomb = Member::file("alpha/bomb.txt", vec![b'a'; 8 << 20], 0o644);
    bomb.declared_size = Some(20 * 1024);
    let w = small("alpha", "1.0", 10).with(bomb);
    p.lock(&[&w]);
    p.spec("");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!("spliced_bomb", p.redact(&stderr(&o)));

    // The same wheels with a correct RECORD build, spliced or not, to one tar.
    let p = Project::new();
    let w = small("alpha", "1.0", 10).with(Member::file("alpha/big.txt", &text, 0o644));
    p.lock(&[&w]);
    p.spec("");
    assert!(p.build(&p.path("cache"), "spliced").status.success());
    fs_err::write(
        p.path("spec.yaml"),
        fs_err::read_to_string(p.path("spec.yaml")).unwrap() + "compression: {algorithm: gzip, splice: false}\n",
    )
    .unwrap();
    assert!(p.build(&p.path("cache"), "plain").status.success());
    let diff_ids = |d: &str| read_layout(&p.path(d)).1["rootfs"]["diff_ids"].clone();
    assert_eq!(diff_ids("spliced"), diff_ids("plain"));
    let (_, _, layers) = read_layout(&p.path("spliced"));
    assert_eq!(layers[0].entries["usr/local/lib/python3.11/dist-packages/alpha/big.txt"].2, text);
}

#[test]
fn missing_lock_says_how_to_make_one() {
    let p = Project::new();
    p.spec("");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!(p.redact(&stderr(&o)).replace("No such file or directory (os error 2)", "ENOENT"));
}

fn cuda_wheels(runtime: &str, torch_pin: &str) -> Vec<Wheel> {
    let rt = Wheel::new("nvidia_cuda_runtime_cu12", runtime).with(Member::file(
        "nvidia/cuda_runtime/lib/libcudart.so.12",
        noise(64, 3),
        0o755,
    ));
    let mut torch = Wheel::new("torch", "2.9.0").with(Member::file("torch/__init__.py", "", 0o644));
    torch.tag = "cp311-cp311-manylinux_2_28_x86_64".into();
    // The real torch 2.9.0 METADATA pins its CUDA wheels like this.
    torch.metadata = Some(format!(
        "Metadata-Version: 2.4\nName: torch\nVersion: 2.9.0\nRequires-Dist: filelock\nRequires-Dist: nvidia-cuda-runtime-cu12=={torch_pin}; platform_system == \"Linux\" and platform_machine == \"x86_64\"\n"
    ));
    vec![rt, torch]
}

#[test]
fn declaring_cuda_12_1_with_torch_2_9_fails_before_any_download() {
    let p = Project::new();
    let w = cuda_wheels("12.8.90", "12.8.90");
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.1\", verify: \"off\"}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    assert_eq!(p.server.requests(), 0, "nothing downloaded");
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

#[test]
fn an_inconsistent_lock_is_caught_from_torch_metadata() {
    let p = Project::new();
    let w = cuda_wheels("12.8.90", "12.8.57");
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.8\", verify: \"off\"}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

/// A torchvision/torchaudio fixture as the real wheels are made: METADATA
/// (with or without a torch pin) and `<pkg>/version.py` recording the build.
fn companion(dist: &str, version: &str, torch_pin: Option<&str>, build: &str) -> Wheel {
    let mut w = Wheel::new(dist, version).with(Member::file(
        &format!("{dist}/version.py"),
        format!("__version__ = '{build}'\ngit_version = '0000000000000000000000000000000000000000'\n"),
        0o644,
    ));
    w.tag = "cp311-cp311-manylinux_2_28_x86_64".into();
    let pin = torch_pin.map(|p| format!("Requires-Dist: torch=={p}\n")).unwrap_or_default();
    w.metadata = Some(format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{pin}"));
    w
}

#[test]
fn torchaudio_2_11_next_to_torch_2_9_is_refused_before_any_download() {
    // What an unpinned `torchaudio` resolves to next to torch==2.9.0: a
    // release whose metadata declares no torch requirement at all.
    let p = Project::new();
    let mut w = cuda_wheels("12.8.90", "12.8.90");
    w.push(companion("torchaudio", "2.11.0", None, "2.11.0+cu130"));
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.8\", verify: \"off\"}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    assert_eq!(p.server.requests(), 0, "nothing downloaded");
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

#[test]
fn a_companion_wheel_is_checked_by_the_build_its_version_py_records() {
    // The lock says 2.9.0, but the wheel it pins (a mirror's, say) is the
    // CUDA 13 build: only the fetched wheel can tell.
    let p = Project::new();
    let mut w = cuda_wheels("12.8.90", "12.8.90");
    w.push(companion("torchvision", "0.24.0", Some("2.9.0"), "0.24.0+cu128"));
    w.push(companion("torchaudio", "2.9.0", Some("2.9.0"), "2.9.0+cu130"));
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.8\", verify: \"off\"}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "torchaudio 2.9.0+cu130 is built for CUDA 13.0 (torchaudio/version.py: __version__ = '2.9.0+cu130')"
        ),
        "{err}"
    );
    // The matching builds (as on PyPI for torch 2.9.0 and CUDA 12.8) pass.
    let p = Project::new();
    let mut w = cuda_wheels("12.8.90", "12.8.90");
    w.push(companion("torchvision", "0.24.0", Some("2.9.0"), "0.24.0+cu128"));
    w.push(companion("torchaudio", "2.9.0", Some("2.9.0"), "2.9.0+cu128"));
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.8\", verify: \"off\"}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_consistent_cuda_stack_records_the_driver_and_optionally_requires_it() {
    let p = Project::new();
    let w = cuda_wheels("12.8.90", "12.8.90");
    p.lock(&w.iter().collect::<Vec<_>>());
    p.spec("gpu: {cuda: \"12.8\", verify: \"off\", require_cuda_env: true}\n");
    let o = p.build(&p.path("cache"), "out");
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, config, _) = read_layout(&p.path("out"));
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["dev.strata.gpu.cuda"], "12.8");
    assert_eq!(labels["dev.strata.gpu.driver-min"], "570.26");
    assert_eq!(labels["dev.strata.gpu.driver-min-compat"], "525.60.13");
    let env: Vec<&str> = config["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.contains(&"NVIDIA_REQUIRE_CUDA=cuda>=12.8"), "{env:?}");
}

#[test]
fn more_than_127_layers_is_refused() {
    let p = Project::new();
    let mut s = String::from("version: 1\nname: deep\nlayers:\n");
    for i in 0..128 {
        s.push_str(&format!("  - dirs: [{{path: /d{i}}}]\n"));
    }
    fs_err::write(p.path("spec.yaml"), s).unwrap();
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

#[test]
fn strata_lock_runs_uv_for_the_image_and_checks_its_output() {
    let p = Project::new();
    let w = small("alpha", "1.0", 10);
    let bytes = w.bytes();
    let url = p.server.put(&w.file_name(), bytes.clone());
    let lock = pylock(&[("alpha", "1.0", format!("url = \"{url}\""), &bytes)]);
    fs_err::write(p.path("canned.toml"), &lock).unwrap();
    // A stand-in for uv: records its arguments and writes the canned lock to --output-file.
    let fake = p.path("uv");
    fs_err::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {args}\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --output-file ]; then cp {canned} \"$2\"; fi; shift; done\n",
            args = p.path("args.txt").display(),
            canned = p.path("canned.toml").display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::write(
        p.path("spec.yaml"),
        "version: 1\nname: py\nlayers:\n  - python:\n      lock: pylock.toml\n      requirements: [\"alpha>=1\"]\n      exclude_newer: 2026-11-01T00:00:00Z\n",
    )
    .unwrap();
    let o = strata(&p.path("cache")).env("STRATA_UV", &fake).arg("lock").arg(p.path("spec.yaml")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs_err::read_to_string(p.path("pylock.toml")).unwrap(), lock);
    let args = fs_err::read_to_string(p.path("args.txt")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    for pair in [
        ["--python-platform", "x86_64-manylinux_2_28"],
        ["--python-version", "3.11"],
        ["--format", "pylock.toml"],
        ["--exclude-newer", "2026-11-01T00:00:00Z"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
    }
    // The lock file records the pylock and its sha256 ...
    let lockfile = fs_err::read_to_string(p.path("spec.lock")).unwrap();
    assert!(lockfile.contains("[python.\"spec.yaml#layers[0]\"]"), "{lockfile}");
    assert!(lockfile.contains(&format!("sha256 = \"sha256:{}\"", sha256_hex(lock.as_bytes()))), "{lockfile}");
    // ... so a build notices a pylock edited afterwards.
    fs_err::write(p.path("pylock.toml"), lock.replace("created-by = \"strata-tests\"", "created-by = \"someone\""))
        .unwrap();
    let o = p.build(&p.path("cache"), "out");
    assert!(!o.status.success());
    let e = p.redact(&stderr(&o));
    let e = e.split("  recorded").next().unwrap().to_string() + &e[e.find("hint:").unwrap()..];
    insta::assert_snapshot!("edited_pylock", e);

    // Without uv: a clear error that says how to get it.
    let o = strata(&p.path("cache"))
        .env("STRATA_UV", p.path("no-such-uv"))
        .arg("lock")
        .arg(p.path("spec.yaml"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    insta::assert_snapshot!(p.redact(&stderr(&o)));
}

#[test]
fn flagship_spec_and_lock_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("specs/pytorch-cuda.yaml");
    let text = fs_err::read_to_string(&path).unwrap();
    let spec: strata::spec::ImageSpec = strata::spec::parse(&path, &text).unwrap();
    let cfg = spec.config.as_ref().unwrap();
    assert_eq!(cfg.user.as_deref(), Some("1000:1000"));
    assert_eq!(cfg.workdir.as_ref().unwrap().0, "/workspace");
    assert_eq!(cfg.cmd.as_deref().unwrap(), ["/usr/bin/tini", "-g", "--", "/usr/local/bin/strata-start"]);
    assert_eq!(cfg.ports, ["8888/tcp", "2222/tcp"]);
    // The bytecode layer sits right above the Python layers.
    let names: Vec<Option<&str>> = spec.layers.iter().map(|l| l.name.as_deref()).collect();
    let python = names.iter().position(|n| *n == Some("python")).unwrap();
    assert_eq!(names[python + 1], Some("bytecode"));
    assert_eq!(cfg.env["NVIDIA_VISIBLE_DEVICES"], "all");
    assert_eq!(cfg.env["NVIDIA_DRIVER_CAPABILITIES"], "compute,utility");
    // TF32: torch 2.9.0 reads this variable when libtorch loads (checked in the
    // built image, docs/python.md "TF32 by default").
    assert_eq!(cfg.env["TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"], "1");
    let gpu = spec.gpu.as_ref().unwrap();
    assert_eq!(gpu.cuda, "12.8");
    let py = spec.layers.iter().find_map(|l| l.python.as_ref()).unwrap();
    let sel = strata::sources::python::pylock::select_file(
        &root.join("specs").join(&py.lock),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(sel.wheels.len(), 125);
    strata::cuda::check_lock(gpu, &sel.wheels).unwrap();
    let version = |n: &str| sel.wheels.iter().find(|w| w.package == n).unwrap().version.clone();
    assert_eq!(version("torch"), "2.9.0");
    // The releases built against torch 2.9.0 (PyPI's are the CUDA 12.8 builds).
    assert_eq!(version("torchvision"), "0.24.0");
    assert_eq!(version("torchaudio"), "2.9.0");
    assert_eq!(version("nvidia-cudnn-cu12"), "9.10.2.21");
    assert_eq!(version("nvidia-nccl-cu12"), "2.27.5");
    // The split: every big CUDA library, torch and triton in a layer of its own.
    let sizes: Vec<(String, u64)> = sel.wheels.iter().map(|w| (w.package.clone(), w.size.unwrap())).collect();
    let plans = strata::sources::python::layering::split(&sizes, &Default::default());
    let own: Vec<&str> = plans.iter().filter(|l| !l.name.starts_with("group-")).map(|l| l.name.as_str()).collect();
    for n in [
        "torch",
        "triton",
        "nvidia-cudnn-cu12",
        "nvidia-cublas-cu12",
        "nvidia-nccl-cu12",
        "nvidia-cusparse-cu12",
        "nvidia-cusparselt-cu12",
        "nvidia-cusolver-cu12",
        "nvidia-cufft-cu12",
        "nvidia-nvshmem-cu12",
    ] {
        assert!(own.contains(&n), "{n} alone: {own:?}");
    }
    assert!(plans.len() <= 32);
}

/// What a package scanner sees: Trivy and Syft are not installable here, so
/// Python's own `importlib.metadata` reads the image's `*.dist-info` (the same
/// files those scanners read) from the unpacked site-packages.
#[test]
fn installed_wheels_are_listed_by_importlib_metadata() {
    if !have_tool("python3", &["--version"]) {
        return;
    }
    let p = Project::new();
    let wheels = [small("alpha", "1.0", 10), small("beta", "2.5", 20)];
    p.lock(&wheels.iter().collect::<Vec<_>>());
    p.spec("");
    let o = p.build(&p.path("cache"), "img");
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, layers) = read_layout(&p.path("img"));
    let root = p.path("rootfs");
    for l in &layers {
        for (path, (kind, _, data)) in &l.entries {
            if *kind == 'f' {
                let dest = root.join(path);
                fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
                fs_err::write(dest, data).unwrap();
            }
        }
    }
    let sp = root.join("usr/local/lib/python3.11/dist-packages");
    let o = Command::new("python3")
        .args(["-I", "-c", "import importlib.metadata as m, sys; print(sorted((d.metadata['Name'], d.version, d.read_text('INSTALLER').strip()) for d in m.distributions(path=[sys.argv[1]])))"])
        .arg(&sp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[('alpha', '1.0', 'strata'), ('beta', '2.5', 'strata')]");
}

#[test]
fn a_python_target_chooses_wheels_paths_and_launchers_for_that_interpreter() {
    // Two wheels of one package: cp311 and cp312. The default target takes
    // the cp311 one; `target: {python: 3.12.3}` the cp312 one, installed
    // under python3.12 with launchers for /usr/bin/python3.12.
    let p = Project::new();
    let mut w311 = small("alpha", "1.0", 1);
    w311.tag = "cp311-cp311-manylinux_2_17_x86_64".into();
    w311.purelib = false;
    let mut w312 = small("alpha", "1.0", 2);
    w312.tag = "cp312-cp312-manylinux_2_34_x86_64".into();
    w312.purelib = false;
    let (b311, b312) = (w311.bytes(), w312.bytes());
    let u311 = p.server.put(&w311.file_name(), b311.clone());
    let u312 = p.server.put(&w312.file_name(), b312.clone());
    let lock = format!(
        "lock-version = \"1.0\"\ncreated-by = \"strata-tests\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"alpha\"\nversion = \"1.0\"\nwheels = [\n  {{ url = \"{u311}\", size = {}, hashes = {{ sha256 = \"{}\" }} }},\n  {{ url = \"{u312}\", size = {}, hashes = {{ sha256 = \"{}\" }} }},\n]\n",
        b311.len(),
        sha256_hex(&b311),
        b312.len(),
        sha256_hex(&b312)
    );
    fs_err::write(p.path("pylock.toml"), lock).unwrap();
    let cache = p.path("cache");
    let build = |extra: &str, out: &str| {
        p.spec(extra);
        let o = strata(&cache)
            .args(["build", "--unlocked"])
            .arg(p.path("spec.yaml"))
            .arg("-o")
            .arg(format!("oci:{}", p.path(out).display()))
            .output()
            .unwrap();
        (o.status.success(), stderr(&o))
    };
    let files = |out: &str| -> BTreeMap<String, Vec<u8>> {
        let (_, _, layers) = read_layout(&p.path(out));
        layers.into_iter().flat_map(|l| l.entries.into_iter()).map(|(k, v)| (k, v.2)).collect()
    };

    let (ok, err) = build("", "default");
    assert!(ok, "{err}");
    let f = files("default");
    assert_eq!(f["usr/local/lib/python3.11/dist-packages/alpha/data.bin"], vec![b'x'; 1]);
    assert!(String::from_utf8_lossy(&f["usr/local/bin/alpha-cli"]).starts_with("#!/usr/bin/python3.11\n"));

    let (ok, err) = build("      target: {python: \"3.12.3\", glibc: \"2.39\"}\n", "py312");
    assert!(ok, "{err}");
    let f = files("py312");
    assert_eq!(f["usr/local/lib/python3.12/dist-packages/alpha/data.bin"], vec![b'x'; 2]);
    assert!(String::from_utf8_lossy(&f["usr/local/bin/alpha-cli"]).starts_with("#!/usr/bin/python3.12\n"));
    assert!(!f.keys().any(|k| k.contains("python3.11")), "{:?}", f.keys().collect::<Vec<_>>());

    // glibc 2.31 is too old for the cp312 wheel (manylinux_2_34): refused, naming the target.
    let (ok, err) = build("      target: {python: \"3.12.3\", glibc: \"2.31\"}\n", "old-glibc");
    assert!(!ok);
    assert!(err.contains("no wheel fits CPython 3.12 manylinux_2_31 x86_64"), "{err}");
    // A version that is not one is a spec error with its position.
    let (ok, err) = build("      target: {python: \"3.12\"}\n", "bad");
    assert!(!ok);
    assert!(err.contains("spec.yaml:11:") && err.contains("is not a CPython 3 version in full"), "{err}");
}
