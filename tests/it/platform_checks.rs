//! Every artifact is checked against the image's platform: a `.deb` of
//! another architecture, a wheel without a tag for the platform's machine,
//! and an ELF program or library for another CPU are errors naming the file
//! and where it came from; `foreign_elf:` lets a layer keep deliberate ones.
//! Offline: packages, an archive and wheels are made here.

use crate::debs_support;
use crate::wheels_support;

use debs_support::{file, pkg, publish_archs, publish_entries, tiny_so, Pkg, Project, Server, TestKey};
use std::process::Output;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tiny_so` for another machine.
fn so_for(machine: u16, soname: &str) -> Vec<u8> {
    let mut b = tiny_so(soname);
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

fn arm64(p: Pkg) -> Pkg {
    Pkg { arch: "arm64".into(), ..p }
}

/// `spec.yaml` with one `debs:` layer for `platform`, plus `extra` lines
/// of that layer entry.
fn write_spec(project: &Project, url: &str, platform: &str, packages: &str, extra: &str) {
    let text = format!(
        "version: 1\nname: t\nplatform: {platform}\nlayers:\n  - name: os\n    debs:\n      keyring: archive-key.asc\n      archives: [{{url: \"{url}\", suites: [stable]}}]\n      packages: [{packages}]\n{extra}"
    );
    fs_err::write(project.path("spec.yaml"), text).unwrap();
}

fn lock_and_build(project: &Project) -> Output {
    let o = project.strata(&["lock", "spec.yaml"]);
    if !o.status.success() {
        return o;
    }
    project.strata(&["build", "spec.yaml", "-o", "oci:out"])
}

#[test]
fn debs_are_resolved_and_checked_for_the_platforms_architecture() {
    let key = TestKey::new(7);
    let server = Server::empty();
    let pkgs = vec![
        pkg("app", "1.0").field("Depends: libfoo").with(file("./usr/share/app/x86", b"amd64 build\n")),
        arm64(pkg("app", "1.0")).field("Depends: libfoo").with(file("./usr/share/app/arm", b"arm64 build\n")),
        Pkg { arch: "all".into(), ..pkg("libfoo", "2.0") }.with(file("./usr/share/libfoo/README", b"any\n")),
    ];
    let url = publish_archs(&server, &key, &pkgs, &["amd64", "arm64"]);
    let project = Project::new(&key);

    // The same spec resolves arm64 packages (and `all` ones) for linux/arm64.
    write_spec(&project, &url, "linux/arm64", "app", "");
    let o = lock_and_build(&project);
    assert!(o.status.success(), "{}", err(&o));
    let lock = fs_err::read_to_string(project.path("spec.lock")).unwrap();
    assert!(lock.contains("arch = \"arm64\""), "{lock}");
    assert!(lock.contains("app_1.0_arm64.deb") && lock.contains("libfoo_2.0_all.deb"), "{lock}");
    let files = debs_support::layer_files_for(&project.path("out"), "linux/arm64");
    assert!(files.contains_key("usr/share/app/arm") && !files.contains_key("usr/share/app/x86"));

    // A lock made for amd64 is stale for arm64.
    write_spec(&project, &url, "linux/amd64", "app", "");
    assert!(project.strata(&["lock", "spec.yaml"]).status.success());
    write_spec(&project, &url, "linux/arm64", "app", "");
    let o = project.strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("platform: locked for linux/amd64, the spec says linux/arm64"), "{}", err(&o));

    // `arch:` naming another architecture than the platform's is refused.
    write_spec(&project, &url, "linux/arm64", "app", "      arch: amd64\n");
    let o = project.strata(&["lock", "spec.yaml"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("`debs.arch: amd64` does not fit the image platform linux/arm64"), "{}", err(&o));
}

#[test]
fn an_archive_without_the_architecture_fails_the_lock() {
    let key = TestKey::new(8);
    let server = Server::empty();
    let url = publish_archs(&server, &key, &[pkg("app", "1.0")], &["amd64"]);
    let project = Project::new(&key);
    write_spec(&project, &url, "linux/arm64", "app", "");
    let o = project.strata(&["lock", "spec.yaml"]);
    assert!(!o.status.success(), "an amd64-only archive gave an arm64 lock");
    eprintln!("{}", err(&o));
    assert!(err(&o).contains("arm64"), "{}", err(&o));
}

#[test]
fn a_deb_whose_control_file_names_another_architecture_is_refused() {
    let key = TestKey::new(9);
    let server = Server::empty();
    // The index says arm64; the .deb itself is the amd64 build.
    let amd = pkg("app", "1.0").with(file("./usr/share/app/x86", b"amd64 build\n"));
    let listed = arm64(amd.clone()).control();
    let url = publish_entries(&server, &key, &[("arm64".into(), listed, amd.deb())], &["arm64"]);
    let project = Project::new(&key);
    write_spec(&project, &url, "linux/arm64", "app", "");
    let o = lock_and_build(&project);
    assert!(!o.status.success(), "an amd64 .deb went into an arm64 image");
    let e = err(&o);
    assert!(
        e.contains("app_1.0_arm64.deb: the package is for architecture `amd64`")
            && e.contains("the image is for linux/arm64"),
        "{e}"
    );
    assert!(!project.path("out").exists());
}

#[test]
fn elf_files_for_another_cpu_are_refused_unless_the_layer_allows_them() {
    let key = TestKey::new(10);
    let server = Server::empty();
    let pkgs = vec![arm64(pkg("libfoo", "1.0"))
        .with(file("./usr/lib/aarch64-linux-gnu/libfoo.so.1", &so_for(EM_AARCH64, "libfoo.so.1")))
        .with(file("./usr/lib/x86_64-linux-gnu/libbar.so.1", &so_for(EM_X86_64, "libbar.so.1")))];
    let url = publish_archs(&server, &key, &pkgs, &["arm64"]);
    let project = Project::new(&key);
    write_spec(&project, &url, "linux/arm64", "libfoo", "");
    let o = lock_and_build(&project);
    assert!(!o.status.success(), "an x86-64 library went into an arm64 image");
    let e = err(&o);
    assert!(
        e.contains("layer `os`: /usr/lib/x86_64-linux-gnu/libbar.so.1 is an ELF x86-64 file (deb libfoo 1.0), but the image is for linux/arm64"),
        "{e}"
    );
    assert!(e.contains("foreign_elf"), "{e}");

    // The escape hatch names the paths; everything else is still checked.
    write_spec(&project, &url, "linux/arm64", "libfoo", "    foreign_elf: [\"/usr/lib/x86_64-linux-gnu/**\"]\n");
    let o = lock_and_build(&project);
    assert!(o.status.success(), "{}", err(&o));
    write_spec(&project, &url, "linux/arm64", "libfoo", "    foreign_elf: [\"/opt/**\"]\n");
    let o = lock_and_build(&project);
    assert!(!o.status.success() && err(&o).contains("libbar.so.1 is an ELF x86-64 file"), "{}", err(&o));
}

#[test]
fn elf_files_of_any_source_are_checked() {
    use base64::Engine as _;
    let project = Project::empty();
    let dir = &project.dir;
    let so = base64::engine::general_purpose::STANDARD.encode(so_for(EM_X86_64, "libx.so"));
    let spec = |platform: &str| {
        let text = format!(
            "version: 1\nname: t\nplatform: {platform}\nlayers:\n  - name: tool\n    files:\n      - {{path: /opt/tool/libx.so, content_base64: \"{so}\"}}\n"
        );
        fs_err::write(dir.path().join("spec.yaml"), text).unwrap();
    };
    let build = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--cache")
            .arg(dir.path().join("cache"))
            .args(["--quiet", "build", "spec.yaml", "-o", "oci:out"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    spec("linux/amd64");
    let o = build();
    assert!(o.status.success(), "{}", err(&o));
    // Same layer, other platform: not taken from the cache unchecked.
    spec("linux/arm64");
    let o = build();
    assert!(!o.status.success());
    assert!(err(&o).contains("/opt/tool/libx.so is an ELF x86-64 file (tool (spec.yaml))"), "{}", err(&o));
    // An unsupported platform is a spec error.
    spec("linux/s390x");
    let o = build();
    assert!(!o.status.success() && err(&o).contains("architecture `s390x` is not supported"), "{}", err(&o));
}

#[test]
fn wheels_are_chosen_for_the_platforms_machine() {
    use wheels_support::{sha256_hex, Member, Server, Wheel};
    let project = Project::empty();
    let dir = &project.dir;
    let server = Server::empty();
    let wheel = |arch: &str, machine: u16| {
        let mut w = Wheel::new("fast", "1.0")
            .with(Member::file("fast/__init__.py", format!("ARCH = '{arch}'\n"), 0o644))
            .with(Member::file("fast/_speed.so", so_for(machine, "_speed.so"), 0o755));
        w.tag = format!("cp311-cp311-manylinux_2_17_{arch}");
        w.purelib = false;
        w
    };
    let entry = |w: &Wheel| {
        let bytes = w.bytes();
        let url = server.put(&w.file_name(), bytes.clone());
        format!("{{ url = \"{url}\", size = {}, hashes = {{ sha256 = \"{}\" }} }}", bytes.len(), sha256_hex(&bytes))
    };
    let (x86, arm) = (entry(&wheel("x86_64", EM_X86_64)), entry(&wheel("aarch64", EM_AARCH64)));
    let pylock = |wheels: &[&str]| {
        let text = format!(
            "lock-version = \"1.0\"\ncreated-by = \"strata-tests\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"fast\"\nversion = \"1.0\"\nwheels = [{}]\n",
            wheels.join(", ")
        );
        fs_err::write(dir.path().join("pylock.toml"), text).unwrap();
    };
    fs_err::write(
        dir.path().join("spec.yaml"),
        "version: 1\nname: t\nplatform: linux/arm64\nlayers:\n  - name: py\n    python: {lock: pylock.toml}\n",
    )
    .unwrap();
    let strata = |args: &[&str]| project.strata(args);
    let lock_and_build = || {
        let o = strata(&["lock", "spec.yaml"]);
        if !o.status.success() {
            return o;
        }
        strata(&["build", "spec.yaml", "-o", "oci:out"])
    };

    // Only an x86_64 wheel: refused for arm64, naming the package and the tags.
    pylock(&[&x86]);
    let o = lock_and_build();
    assert!(!o.status.success(), "an x86_64 wheel went into an arm64 image");
    let e = err(&o);
    assert!(e.contains("package `fast` 1.0: no wheel fits CPython 3.11 manylinux_2_28 aarch64"), "{e}");
    assert!(e.contains("cp311-cp311-manylinux_2_17_x86_64"), "{e}");

    // One pylock listing both: the aarch64 wheel is chosen.
    pylock(&[&x86, &arm]);
    let o = lock_and_build();
    assert!(o.status.success(), "{}", err(&o));
    let files = debs_support::layer_files_for(&dir.path().join("out"), "linux/arm64");
    let init = files.iter().find(|(p, _)| p.ends_with("fast/__init__.py")).expect("fast installed");
    assert_eq!(init.1 .2, b"ARCH = 'aarch64'\n");
}

#[test]
fn an_arm64_gpu_image_carries_the_arm64_verifier_as_its_entrypoint() {
    let project = Project::empty();
    let dir = &project.dir;
    fs_err::write(
        dir.path().join("spec.yaml"),
        "version: 1\nname: g\nplatform: linux/arm64\nlayers:\n  - name: x\n    dirs: [{path: /x}]\ngpu: {cuda: \"12.8\"}\nconfig:\n  entrypoint: [/x/app]\n",
    )
    .unwrap();
    let strata = |args: &[&str]| project.strata(args);
    let o = strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(o.status.success(), "{}", err(&o));
    let arm64_verifier = strata::sources::verifier::Embedded::for_platform("linux/arm64").expect("strata carries one");
    assert_eq!(arm64_verifier.target, "aarch64-unknown-linux-gnu");

    // The verifier's layer holds the arm64 binary (ELF machine AArch64, so
    // the foreign-ELF check let it through), and it wraps the entrypoint.
    let files = debs_support::layer_files_for(&dir.path().join("out"), "linux/arm64");
    let (kind, mode, bytes) = files.get("usr/local/bin/strata-verify").expect("the verifier is in the image");
    assert_eq!((*kind, *mode), ('f', 0o755));
    assert_eq!(bytes.as_slice(), arm64_verifier.bytes);
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), EM_AARCH64);
    let o = strata(&["inspect", "--json", "oci:out"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"]["architecture"], "arm64");
    assert_eq!(
        v["config"]["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/strata-verify", "--", "/x/app"])
    );
    assert_eq!(
        v["config"]["config"]["Labels"]["dev.strata.verifier.sha256"],
        arm64_verifier.sha256().to_string(),
        "the image names the arm64 verifier"
    );
    // So does the provenance's builder version.
    let (_, stmt) = crate::common::provenance_in_layout(&dir.path().join("out"));
    assert_eq!(
        stmt["predicate"]["runDetails"]["builder"]["version"]["strata-verify"],
        arm64_verifier.sha256().to_string()
    );

    // An x86-64 verifier passed for the arm64 image is refused by the
    // foreign-ELF check, naming the file.
    let x86 = dir.path().join("strata-verify-x86");
    let o = strata(&["verifier", "--platform", "linux/amd64", "--write", x86.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let o = strata(&["build", "spec.yaml", "-o", "oci:out2", "--verifier", x86.to_str().unwrap()]);
    assert!(!o.status.success(), "an x86-64 verifier went into an arm64 image");
    let e = err(&o);
    assert!(e.contains("usr/local/bin/strata-verify") && e.contains("x86-64"), "{e}");
}

#[test]
fn a_two_platform_gpu_spec_pins_and_carries_each_platforms_verifier() {
    use strata::sources::verifier::Embedded;
    let project = Project::empty();
    let dir = &project.dir;
    fs_err::write(
        dir.path().join("spec.yaml"),
        "version: 1\nname: g\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - name: x\n    dirs: [{path: /x}]\ngpu: {cuda: \"12.8\"}\n",
    )
    .unwrap();
    let strata = |args: &[&str]| project.strata(args);
    let o = strata(&["lock", "spec.yaml"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = strata(&["build", "spec.yaml", "-o", "oci:out"]);
    assert!(o.status.success(), "{}", err(&o));
    for (platform, lock, machine) in
        [("linux/amd64", "spec.linux-amd64.lock", EM_X86_64), ("linux/arm64", "spec.linux-arm64.lock", EM_AARCH64)]
    {
        let e = Embedded::for_platform(platform).unwrap();
        let l: toml::Table = toml::from_str(&fs_err::read_to_string(dir.path().join(lock)).unwrap()).unwrap();
        assert_eq!(l["verifier"]["sha256"].as_str(), Some(e.sha256().to_string().as_str()), "{lock}");
        assert_eq!(l["verifier"]["size"].as_integer(), Some(e.bytes.len() as i64), "{lock}");
        let files = debs_support::layer_files_for(&dir.path().join("out"), platform);
        let bytes = &files["usr/local/bin/strata-verify"].2;
        assert_eq!(bytes.as_slice(), e.bytes, "{platform}");
        assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), machine, "{platform}");
    }
}
