//! The layer cache in a registry (`--cache-from` / `--cache-to`) against
//! Debian's docker-registry with htpasswd auth: two runners with separate
//! local caches share layers through it (the second downloads no artifact),
//! a corrupted entry is ignored with a warning, and the cache never changes
//! a digest.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

/// Serves one file at one path on loopback; counts the requests for it.
fn serve(path: &'static str, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    serve_one(path, body)
}

fn tarball() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = pseudo_random(7, 300_000);
    let mut h = tar::Header::new_gnu();
    h.set_path("opt/tool/data.bin").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

struct Setup {
    env_a: Env,
    env_b: Env,
    spec: String,
    hits: Arc<AtomicUsize>,
    reg: TestRegistry,
}

fn setup() -> Option<Setup> {
    if !tools(&["docker-registry"]) {
        return None;
    }
    let body = tarball();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let (server, hits) = serve("/files/tool-1.0.tar.gz", body);
    let reg = TestRegistry::start(Auth::Htpasswd);
    let mut env_a = Env::new();
    let mut env_b = Env::new();
    for e in [&mut env_a, &mut env_b] {
        e.set("STRATA_REGISTRY_USER", USER);
        e.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
    }
    let spec = env_a.path("app.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nname: app\ntag: \"1.0\"\nepoch: 1700000000\nlayers:\n  - name: base\n    dirs: [{{path: /tmp, mode: \"1777\"}}]\n    symlinks: [{{path: /opt/current, target: tool}}]\n  - name: tool\n    tarball: {{url: {server}/files/tool-1.0.tar.gz, sha256: {sha}}}\n  - name: conf\n    files: [{{path: /opt/current/app.conf, content: \"mode=cached\\n\"}}]\nconfig: {{entrypoint: [/opt/tool/run]}}\n"
        ),
    )
    .unwrap();
    Some(Setup { env_a, env_b, spec: spec.display().to_string(), hits, reg })
}

#[test]
fn two_runners_share_layers_through_the_registry_and_the_digest_never_changes() {
    let Some(s) = setup() else { return };
    let cache = format!("{}/ci/strata-cache", s.reg.host());
    let out_a = format!("oci:{}", s.env_a.path("a").display());

    // Without any registry cache: the reference digest.
    let plain = last_line(&s.env_a.ok(&["build", &s.spec, "-o", &format!("oci:{}", s.env_a.path("plain").display())]));
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);

    // Runner A (warm local cache) fills the registry cache.
    let a = s.env_a.json(&["build", &s.spec, "-o", &out_a, "--cache-to", &cache]);
    assert_eq!(a["manifest_digest"], plain.as_str(), "--cache-to changed the digest");
    assert_eq!(a["registry_cache"]["written"], 3, "{a}");

    // Runner B: an empty local cache, reads the registry cache; downloads no
    // artifact, writes the same image.
    let out_b = format!("oci:{}", s.env_b.path("b").display());
    let b = s.env_b.json(&["build", &s.spec, "-o", &out_b, "--cache-from", &cache]);
    assert_eq!(b["manifest_digest"], plain.as_str(), "--cache-from changed the digest");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1, "runner B downloaded the tarball");
    assert_eq!(b["fetch"]["downloaded"], 0, "{b}");
    assert_eq!(b["registry_cache"]["hits"], 3, "{b}");
    assert!(b["layers"].as_array().unwrap().iter().all(|l| l["cached"] == true), "{b}");
    // The layout B wrote is whole: skopeo reads every blob of it.
    let o = skopeo(&["inspect", &format!("oci:{}:1.0", s.env_b.path("b").display())]);
    assert!(o.status.success(), "{}", text(&o));

    // B again: now from its local cache, nothing from the registry.
    let b2 = s.env_b.json(&["build", &s.spec, "-o", &out_b, "--cache-from", &cache]);
    assert_eq!(b2["manifest_digest"], plain.as_str());
    assert_eq!(b2["registry_cache"]["hits"], 0, "{b2}");

    // Concurrent writers are harmless: B writing the same entries again
    // writes nothing new (the same bytes are there), and pushing B's build
    // to the same registry mounts the layer blobs, uploads none of them.
    let env_c = Env::new();
    let mut env_c = env_c;
    env_c.set("STRATA_REGISTRY_USER", USER);
    env_c.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
    let dest = format!("{}/team/app:1.0", s.reg.host());
    let c =
        env_c.json(&["build", &s.spec, "-o", "none", "--cache-from", &cache, "--cache-to", &cache, "--push", &dest]);
    assert_eq!(c["manifest_digest"], plain.as_str());
    assert_eq!(c["registry_cache"]["written"], 0, "{c}");
    assert_eq!(c["registry_cache"]["blobs_downloaded"], 0, "-o none downloaded layer blobs: {c}");
    let blobs = c["push"]["blobs"].as_array().unwrap();
    for l in c["layers"].as_array().unwrap() {
        let d = &l["digest"];
        let b = blobs.iter().find(|b| &b["digest"] == d).unwrap_or_else(|| panic!("{d} not pushed: {c}"));
        assert_ne!(b["action"], "uploaded", "layer {d} was uploaded again: {c}");
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 1, "runner C downloaded the tarball");
    assert_eq!(skopeo_digest(&dest, Some(&format!("{USER}:{PASSWORD}"))), plain);
}

#[test]
fn a_corrupted_entry_is_ignored_with_a_warning_and_the_digest_is_unchanged() {
    let Some(s) = setup() else { return };
    let cache = format!("{}/ci/strata-cache", s.reg.host());
    let a =
        s.env_a.json(&["build", &s.spec, "-o", &format!("oci:{}", s.env_a.path("a").display()), "--cache-to", &cache]);
    let digest = a["manifest_digest"].as_str().unwrap().to_string();
    let tool = a["layers"].as_array().unwrap().iter().find(|l| l["name"] == "tool").unwrap().clone();
    let tool_digest = tool["digest"].as_str().unwrap().to_string();

    // Overwrite the `tool` layer's entry with one that claims another blob
    // (the `conf` layer's) for the same key: a lie an unverified cache
    // would put into the image.
    let creds = format!("{USER}:{PASSWORD}");
    let tags = skopeo(&["list-tags", "--creds", &creds, "--tls-verify=false", &format!("docker://{cache}")]);
    assert!(tags.status.success(), "{}", text(&tags));
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let conf = a["layers"].as_array().unwrap().iter().find(|l| l["name"] == "conf").unwrap().clone();
    let mut victim = None;
    for t in tags["Tags"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        let m =
            skopeo(&["inspect", "--raw", "--creds", &creds, "--tls-verify=false", &format!("docker://{cache}:{t}")]);
        let m: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
        if m["layers"][0]["digest"] == tool_digest.as_str() {
            victim = Some((t.to_string(), m));
        }
    }
    let (tag, mut m) = victim.expect("the tool layer's entry");
    m["layers"][0]["digest"] = conf["digest"].clone();
    m["layers"][0]["size"] = conf["size"].clone();
    let raw = serde_json::to_vec(&m).unwrap();
    let status = std::process::Command::new("curl")
        .args(["-sf", "-u", &creds, "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json"])
        .arg("--data-binary")
        .arg("@-")
        .arg(format!(
            "http://{cache_repo}/manifests/{tag}",
            cache_repo = format_args!("{}/v2/ci/strata-cache", s.reg.host())
        ))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&raw)?;
            c.wait()
        });
    if status.is_err() {
        return; // no curl
    }
    assert!(status.unwrap().success(), "replacing the entry failed");

    let o = s.env_b.run(&[
        "build",
        &s.spec,
        "-o",
        &format!("oci:{}", s.env_b.path("b").display()),
        "--cache-from",
        &cache,
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("warning: registry cache {cache}: entry {tag} is not valid")),
        "no warning for the corrupted entry:\n{err}"
    );
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b["manifest_digest"], digest.as_str(), "a corrupted entry changed the digest");
    let tool_b = b["layers"].as_array().unwrap().iter().find(|l| l["name"] == "tool").unwrap().clone();
    assert_eq!(tool_b["cached"], false, "the corrupted entry was used: {b}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 2, "the tool layer is built again from its tarball");
}

/// Runs `script` with bash inside a new network namespace whose only
/// interface is loopback, where a second `docker-registry` serves the
/// storage of `reg` on the same address: the registry is the only thing
/// reachable.
fn in_netns_with_registry(reg: &TestRegistry, env: &Env, script: &str) -> std::process::Output {
    let bin = which("docker-registry").unwrap();
    let port = reg.addr.port();
    let full = format!(
        "set -u\nip link set lo up\n{bin} serve {cfg} >{log} 2>&1 &\nREG=$!\nfor i in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n{script}\nrc=$?\nkill $REG\nexit $rc\n",
        bin = bin.display(),
        cfg = reg.config_path().display(),
        log = env.path("netns-registry.log").display(),
    );
    let c = env.strata(&[]);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-n", "--", "bash", "-c", &full]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().unwrap()
}

fn can_unshare() -> bool {
    let ok = std::process::Command::new("unshare").args(["-n", "true"]).status().map(|s| s.success()).unwrap_or(false);
    if !ok && std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("unshare -n does not work here (needs root)");
    }
    ok
}

#[test]
fn a_registry_mirror_feeds_an_offline_build_in_a_network_namespace() {
    if !tools(&["unshare", "ip", "bash"]) || !can_unshare() {
        return;
    }
    let Some(s) = setup() else { return };
    let mirror = format!("docker://{}/mirror/strata", s.reg.host());

    // Connected side: fill the registry mirror, build online, verify it.
    let f = s.env_a.json(&["fetch", &s.spec, "--into", &mirror]);
    assert_eq!(f["added"], 1, "{f}");
    let again = s.env_a.json(&["fetch", &s.spec, "--into", &mirror]);
    assert_eq!(again["added"], 0, "a second fetch uploads nothing: {again}");
    let online =
        last_line(&s.env_a.ok(&["build", &s.spec, "-o", &format!("oci:{}", s.env_a.path("online").display())]));
    let v = s.env_a.ok(&["fetch", "--verify", &mirror]);
    assert!(v.contains("1 files verified"), "{v}");

    // Disconnected side: only the registry is reachable, the cache is empty.
    let strata = strata_bin();
    let out = s.env_b.path("app.tar");
    let o = in_netns_with_registry(
        &s.reg,
        &s.env_b,
        &format!("{} build {} --offline --mirror {mirror} -o oci-archive:{}", strata.display(), s.spec, out.display()),
    );
    assert!(o.status.success(), "offline build from the registry mirror failed:\n{}", text(&o));
    assert_eq!(last_line(&String::from_utf8_lossy(&o.stdout)), online, "the offline build must give the online digest");

    // The namespace really has no other network: without the mirror the
    // same build (empty cache, not offline) cannot download the tarball.
    let o = in_netns_with_registry(
        &s.reg,
        &s.env_b,
        &format!(
            "STRATA_CACHE={} STRATA_NET_DEADLINE=2s {} build {} -o oci:{}",
            s.env_b.path("cold").display(),
            strata.display(),
            s.spec,
            s.env_b.path("x").display()
        ),
    );
    assert!(!o.status.success(), "the namespace reached the artifact server:\n{}", text(&o));

    // A repository without a mirror is an empty one.
    let empty = format!("docker://{}/mirror/empty", s.reg.host());
    let v = s.env_a.ok(&["fetch", "--verify", &empty]);
    assert!(v.contains("0 files verified"), "{v}");
}
