//! The air-gapped workflow end to end: on the connected side fill a mirror
//! from a (loopback) artifact server; on the disconnected side build inside a
//! network namespace with no interfaces from the mirror alone, push the
//! oci-archive to the internal registry, and audit the pushed image.

use std::io::Write;
use std::process::Command;

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

/// Serves one file at one path on loopback (the "internet" of this test).
fn serve(path: &'static str, body: Vec<u8>) -> String {
    serve_one(path, body).0
}

fn tarball() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"#!/bin/sh\necho internal tool\n";
    let mut h = tar::Header::new_gnu();
    h.set_path("opt/tool").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn can_unshare() -> bool {
    let ok = Command::new("unshare").args(["-n", "true"]).status().map(|s| s.success()).unwrap_or(false);
    if !ok && std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("unshare -n does not work here (needs root)");
    }
    ok
}

#[test]
fn fetch_offline_build_in_netns_push_and_audit() {
    if !tools(&["docker-registry", "unshare"]) || !can_unshare() {
        return;
    }
    let body = tarball();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let server = serve("/files/tool-1.0.tar.gz", body);
    let env = Env::new();
    let spec = env.path("app.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: app\ntag: \"1.0\"\nepoch: 1700000000\nlayers:\n  - name: tool\n    tarball: {{url: {server}/files/tool-1.0.tar.gz, sha256: {sha}}}\n  - name: conf\n    files: [{{path: /etc/app.conf, content: \"mode=offline\\n\"}}]\nconfig: {{entrypoint: [/opt/tool]}}\n"
        ),
    )
    .unwrap();
    let spec_s = spec.display().to_string();
    let mirror = env.path("mirror");
    let mirror_s = mirror.display().to_string();

    // Connected side.
    env.ok(&["fetch", &spec_s, "--into", &mirror_s]);
    let online = last_line(&env.ok(&["build", &spec_s, "-o", &format!("oci:{}", env.path("online").display())]));

    // Disconnected side: a network namespace with no interfaces, a cold cache.
    let archive = env.path("app.tar");
    let mut c = env.strata(&[
        "build",
        &spec_s,
        "--offline",
        "--mirror",
        &mirror_s,
        "-o",
        &format!("oci-archive:{}", archive.display()),
    ]);
    c.env("STRATA_CACHE", env.path("inside-cache"));
    let program = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = c.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
    let mut inside = Command::new("unshare");
    inside.arg("-n").arg("--").arg(&program).args(&args);
    for (k, v) in envs {
        match v {
            Some(v) => inside.env(k, v),
            None => inside.env_remove(k),
        };
    }
    let o = inside.output().unwrap();
    assert!(o.status.success(), "offline build in the namespace failed:\n{}", text(&o));
    let offline = last_line(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(offline, online, "the offline build must give the online build's digest");

    // Push the archive to the internal registry, then audit it from the mirror.
    let reg = TestRegistry::start(Auth::Open);
    let dest = format!("{}/internal/app:1.0", reg.host());
    let pushed = last_line(&env.ok(&["push", &format!("oci-archive:{}", archive.display()), &dest]));
    assert_eq!(pushed, online);
    let mut audit = env.strata(&["audit", &spec_s, &format!("docker://{dest}"), "--offline", "--mirror", &mirror_s]);
    audit.env("STRATA_CACHE", env.path("auditor-cache"));
    let o = audit.output().unwrap();
    assert!(o.status.success(), "audit:\n{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("identical:"), "{}", text(&o));
}
