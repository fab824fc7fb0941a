//! A registry mirror shared by several `fetch --into` at once, against
//! Debian's docker-registry with htpasswd auth: each fetch writes its own
//! content-derived tag, so two fetches of different specs at the same
//! moment lose nothing, and a mirror written by older versions (one
//! `strata-mirror` tag) is still read and extended.

use std::io::Write;
use std::process::Stdio;

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

fn tarball(seed: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = pseudo_random(seed, 100_000);
    let mut h = tar::Header::new_gnu();
    h.set_path(format!("opt/tool{seed}/data.bin")).unwrap();
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

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A spec with one tarball layer served on loopback: (spec path, tarball URL, bytes).
fn spec(env: &Env, name: &str, seed: u64) -> (String, String, Vec<u8>) {
    let body = tarball(seed);
    let sha = sha256_hex(&body);
    let (server, _) = serve_one("/files/tool.tar.gz", body.clone());
    let url = format!("{server}/files/tool.tar.gz");
    let path = env.path(&format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\ntag: \"1.0\"\nepoch: 1700000000\nlayers:\n  - name: tool\n    tarball: {{url: {url}, sha256: {sha}}}\n  - name: conf\n    files: [{{path: /etc/{name}.conf, content: \"{name}\\n\"}}]\n"
        ),
    )
    .unwrap();
    (path.display().to_string(), url, body)
}

fn env_with_creds() -> Env {
    let mut e = Env::new();
    e.set("STRATA_REGISTRY_USER", USER);
    e.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
    e
}

fn tags(repo: &str) -> Vec<String> {
    let o = skopeo(&[
        "list-tags",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut t: Vec<String> = v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    t.sort();
    t
}

/// `strata build SPEC --offline --mirror MIRROR` with an empty cache: the digest.
fn offline_build(env: &Env, spec: &str, mirror: &str, cache: &str) -> String {
    let mut c = env.strata(&[
        "build",
        spec,
        "--offline",
        "--mirror",
        mirror,
        "-o",
        &format!("oci:{}", env.path(cache).display()),
    ]);
    c.env("STRATA_CACHE", env.path(&format!("{cache}-cache")));
    let o = c.output().unwrap();
    assert!(o.status.success(), "offline build of {spec} from {mirror} failed:\n{}", text(&o));
    last_line(&String::from_utf8_lossy(&o.stdout))
}

#[test]
fn concurrent_fetches_of_different_specs_into_one_registry_mirror_lose_nothing() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let (env_a, env_b) = (env_with_creds(), env_with_creds());
    let (spec_a, _, _) = spec(&env_a, "alpha", 11);
    let (spec_b, _, _) = spec(&env_b, "beta", 12);
    let online_a = last_line(&env_a.ok(&["build", &spec_a, "-o", &format!("oci:{}", env_a.path("online").display())]));
    let online_b = last_line(&env_b.ok(&["build", &spec_b, "-o", &format!("oci:{}", env_b.path("online").display())]));

    for round in 0..4 {
        let mirror = format!("docker://{}/mirror/round{round}", reg.host());
        // Two runners, two specs, the same repository, the same moment.
        let spawn = |env: &Env, spec: &str| {
            let mut c = env.strata(&["fetch", spec, "--into", &mirror]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        };
        let (a, b) = (spawn(&env_a, &spec_a), spawn(&env_b, &spec_b));
        for (name, c) in [("alpha", a), ("beta", b)] {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: fetch {name} failed:\n{}", text(&o));
        }
        let v = env_a.ok(&["fetch", "--verify", &mirror]);
        assert!(v.contains("2 files verified"), "round {round}: one fetch's artifact was lost: {v}");
        // Each fetch has its own tag; the plain tag is the copy for older readers.
        let t = tags(&format!("{}/mirror/round{round}", reg.host()));
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t.contains(&"strata-mirror".to_string()), "{t:?}");
        assert_eq!(t.iter().filter(|t| t.starts_with("strata-mirror-")).count(), 2, "{t:?}");
    }

    // Both specs build offline, from an empty cache, from the last round's mirror.
    let mirror = format!("docker://{}/mirror/round3", reg.host());
    assert_eq!(offline_build(&env_a, &spec_a, &mirror, "off-a"), online_a);
    assert_eq!(offline_build(&env_a, &spec_b, &mirror, "off-b"), online_b);

    // Fetching again writes the same tag again: nothing new.
    let again = env_a.json(&["fetch", &spec_a, "--into", &mirror]);
    assert_eq!(again["added"], 0, "{again}");
    assert_eq!(tags(&format!("{}/mirror/round3", reg.host())).len(), 3);
}

/// Writes a mirror the way older versions did: one manifest tagged
/// `strata-mirror` whose config is the whole index.
fn client() -> strata::registry::Client {
    let opts = strata::registry::ClientOptions {
        credentials: strata::registry::CredentialOptions {
            explicit: Some((USER.into(), PASSWORD.into())),
            ..Default::default()
        },
        ..Default::default()
    };
    strata::registry::Client::new(opts, std::sync::Arc::new(strata::report::NullReporter)).unwrap()
}

fn write_legacy_mirror(reg: &TestRegistry, repo: &str, name: &str, url: &str, body: &[u8]) {
    let client = client();
    let r = strata::oci::Reference::parse(&format!("{}/{repo}", reg.host())).unwrap();
    let digest = format!("sha256:{}", sha256_hex(body));
    client.push_blob_bytes(&r, body, "application/octet-stream").unwrap();
    let index = serde_json::json!({
        "version": 1,
        "artifacts": {digest.clone(): {"name": name, "url": url, "size": body.len()}},
    });
    let config = serde_json::to_vec(&index).unwrap();
    client.push_blob_bytes(&r, &config, "application/vnd.strata.mirror.index.v1+json").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.strata.mirror.v1",
        "config": {
            "mediaType": "application/vnd.strata.mirror.index.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)),
            "size": config.len(),
        },
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": body.len()}],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    client.push_manifest(&r, &bytes, "application/vnd.oci.image.manifest.v1+json", Some("strata-mirror")).unwrap();
}

#[test]
fn a_mirror_written_by_older_versions_is_read_and_extended() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let env = env_with_creds();
    let (spec_a, url_a, body_a) = spec(&env, "alpha", 21);
    let (spec_b, _, _) = spec(&env, "beta", 22);
    let online_a = last_line(&env.ok(&["build", &spec_a, "-o", &format!("oci:{}", env.path("online-a").display())]));
    let online_b = last_line(&env.ok(&["build", &spec_b, "-o", &format!("oci:{}", env.path("online-b").display())]));
    write_legacy_mirror(&reg, "mirror/old", "tool.tar.gz", &url_a, &body_a);
    let mirror = format!("docker://{}/mirror/old", reg.host());
    assert_eq!(tags(&format!("{}/mirror/old", reg.host())), ["strata-mirror"]);

    // Read as it is.
    let v = env.ok(&["fetch", "--verify", &mirror]);
    assert!(v.contains("1 files verified"), "{v}");
    assert_eq!(offline_build(&env, &spec_a, &mirror, "old-a"), online_a);

    // Extended by a new fetch: its own tag, and the old tag now lists both.
    env.ok(&["fetch", &spec_b, "--into", &mirror]);
    let t = tags(&format!("{}/mirror/old", reg.host()));
    assert_eq!(t.len(), 2, "{t:?}");
    let v = env.ok(&["fetch", "--verify", &mirror]);
    assert!(v.contains("2 files verified"), "{v}");
    assert_eq!(offline_build(&env, &spec_a, &mirror, "new-a"), online_a);
    assert_eq!(offline_build(&env, &spec_b, &mirror, "new-b"), online_b);
    let o = skopeo(&[
        "inspect",
        "--raw",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        "--tls-verify=false",
        &format!("docker://{}/mirror/old:strata-mirror", reg.host()),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2, "the copy for older readers lists both: {m}");
}

#[test]
fn a_foreign_image_under_the_mirror_tag_is_skipped_with_a_warning_and_never_overwritten() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let env = env_with_creds();
    let (spec_a, _, _) = spec(&env, "alpha", 31);
    // An image (not a mirror) tagged strata-mirror.
    let (layout, _) = hello_image();
    let dest = format!("{}/mirror/mixed:strata-mirror", reg.host());
    env.ok(&["push", &format!("oci:{}", layout.display()), &dest]);
    let before = skopeo_digest(&dest, Some(&format!("{USER}:{PASSWORD}")));
    let mirror = format!("docker://{}/mirror/mixed", reg.host());
    let o = env.run(&["fetch", &spec_a, "--into", &mirror]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the tag strata-mirror is not a strata mirror; skipped"),
        "{}",
        text(&o)
    );
    assert_eq!(skopeo_digest(&dest, Some(&format!("{USER}:{PASSWORD}"))), before, "the image was overwritten");
    // Verify names the foreign tag as a problem; the artifact is there.
    let o = env.run(&["fetch", "--verify", &mirror]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 1 files have problems"), "{}", text(&o));
}

#[test]
fn a_mirror_among_more_tags_than_one_page_is_found() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let env = env_with_creds();
    let (spec_a, _, _) = spec(&env, "alpha", 41);
    let mirror = format!("docker://{}/mirror/busy", reg.host());
    env.ok(&["fetch", &spec_a, "--into", &mirror]);
    // 1,100 other tags: more than the 1,000 asked for per page (this
    // registry ignores `n` and sends them all, unsorted, every time).
    let client = client();
    let r = strata::oci::Reference::parse(&format!("{}/mirror/busy", reg.host())).unwrap();
    client.push_blob_bytes(&r, b"{}", "application/vnd.oci.empty.v1+json").unwrap();
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    for i in 0..1100 {
        client.push_manifest(&r, m, "application/vnd.oci.image.manifest.v1+json", Some(&format!("v{i:04}"))).unwrap();
    }
    assert_eq!(client.list_tags(&r, 10_000).unwrap().len(), 1102);
    let v = env.ok(&["fetch", "--verify", &mirror]);
    assert!(v.contains("1 files verified"), "{v}");
    // More tags than a reader takes is a clear error, not a partial mirror.
    let e = client.list_tags(&r, 1000).unwrap_err().to_string();
    assert!(e.contains("more than 1000 tags"), "{e}");
}
