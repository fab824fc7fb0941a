//! Push, pull and inspect against the real docker-registry (open, htpasswd
//! and token auth), judged by skopeo, umoci and runc.

use strata_registry_tests::registry::Auth;
use strata_registry_tests::token::TokenServer;
use strata_registry_tests::*;

const HELLO: &str = "Hello from a Strata image!";

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

#[test]
fn open_registry_push_inspect_pull_run() {
    if !tools(&["docker-registry", "skopeo", "umoci", "runc"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let env = Env::new();
    let (layout, digest) = hello_image();
    let dest = format!("{}/strata/hello:1.0", reg.host());

    let out = env.ok(&["push", &format!("oci:{}", layout.display()), &dest]);
    assert_eq!(last_line(&out), digest);
    assert_eq!(skopeo_digest(&dest, None), digest, "skopeo reads the manifest we pushed");
    assert!(run_image(&dest, None, env.dir.path()).contains(HELLO));

    // inspect docker://
    let v = env.json(&["inspect", &format!("docker://{dest}")]);
    assert_eq!(v["manifest_digest"], digest.as_str());
    assert_eq!(v["config"]["config"]["Entrypoint"][0], "/hello");

    // pull into a layout, then the layout pushes back to the same digest
    let pulled = env.path("pulled");
    let out = env.ok(&["pull", &dest, "-o", &format!("oci:{}", pulled.display())]);
    assert_eq!(last_line(&out), digest);
    let v = env.json(&["inspect", &format!("oci:{}:1.0", pulled.display())]);
    assert_eq!(v["manifest_digest"], digest.as_str());

    // diff and audit read docker:// through the same ImageSource
    let o = env.run(&["diff", &format!("oci:{}", layout.display()), &format!("docker://{dest}")]);
    assert_eq!(o.status.code(), Some(0), "identical images: {}", text(&o));
    let spec = workspace().join("specs/hello.yaml");
    let o = env.run(&["audit", spec.to_str().unwrap(), &format!("docker://{dest}")]);
    assert_eq!(o.status.code(), Some(0), "the pushed image reproduces from its spec: {}", text(&o));

    // re-push: nothing uploaded
    let v = env.json(&["push", &format!("oci:{}", layout.display()), &dest]);
    assert_eq!(v["bytes_sent"], 0, "{v:#}");
    assert!(v["blobs"].as_array().unwrap().iter().all(|b| b["action"] == "skipped"), "{v:#}");
}

#[test]
fn shared_layers_are_mounted_from_another_repository() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    // Two images sharing the hello layers, each with its own payload layer.
    let (base, base_digest) = big_image("mount-base", 1, 11);
    let (app, app_digest) = big_image("mount-app", 2, 12);
    let base_src = format!("oci:{}", base.display());

    // Remembered from an earlier push in the same cache.
    let env = Env::new();
    env.ok(&["push", &base_src, &format!("{}/team/base:1", reg.host())]);
    let v = env.json(&["push", &format!("oci:{}", app.display()), &format!("{}/team/app:1", reg.host())]);
    let blobs = v["blobs"].as_array().unwrap();
    let mounted: Vec<_> = blobs.iter().filter(|b| b["action"] == "mounted").collect();
    let mounted_layers = mounted.iter().filter(|b| b["media_type"].as_str().unwrap().contains(".layer.")).count();
    assert_eq!(mounted_layers, 2, "both hello layers mount from team/base: {v:#}");
    assert!(mounted.iter().all(|b| b["mounted_from"] == "team/base" && b["bytes_sent"] == 0));
    assert_eq!(skopeo_digest(&format!("{}/team/app:1", reg.host()), None), app_digest);

    // Named with --from, in a fresh cache that remembers nothing.
    let env2 = Env::new();
    let v = env2.json(&["push", &base_src, &format!("{}/other/copy:1", reg.host()), "--from", "team/base"]);
    assert!(v["blobs"].as_array().unwrap().iter().all(|b| b["action"] == "mounted"), "{v:#}");
    assert_eq!(v["bytes_sent"], 0);
    assert_eq!(skopeo_digest(&format!("{}/other/copy:1", reg.host()), None), base_digest);
    assert!(reg.log().contains("mount"), "the registry log shows mounts");
}

#[test]
fn htpasswd_registry_with_every_credential_source() {
    if !tools(&["docker-registry", "skopeo", "umoci", "runc"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let (layout, digest) = hello_image();
    let src = format!("oci:{}", layout.display());
    let c = creds();

    // --creds
    let env = Env::new();
    let dest = format!("{}/auth/hello:creds", reg.host());
    assert_eq!(last_line(&env.ok(&["push", &src, &dest, "--creds", &c])), digest);
    assert_eq!(skopeo_digest(&dest, Some(&c)), digest);
    assert!(run_image(&dest, Some(&c), env.dir.path()).contains(HELLO));

    // environment
    let mut env = Env::new();
    env.set("STRATA_REGISTRY_USER", USER);
    env.set("STRATA_REGISTRY_PASSWORD", PASSWORD);
    env.ok(&["push", &src, &format!("{}/auth/hello:env", reg.host())]);

    // podman auth.json via REGISTRY_AUTH_FILE
    let mut env = Env::new();
    let authfile = env.path("auth.json");
    let b64 = base64_encode(&c);
    std::fs::write(&authfile, format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host())).unwrap();
    env.set("REGISTRY_AUTH_FILE", authfile.to_str().unwrap());
    env.ok(&["push", &src, &format!("{}/auth/hello:authfile", reg.host())]);

    // docker config.json with a credential helper
    let mut env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-strata-test");
    std::fs::write(&helper, format!("#!/bin/sh\nread server\necho \"{{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"{USER}\\\",\\\"Secret\\\":\\\"{PASSWORD}\\\"}}\"\n")).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = env.path("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), format!(r#"{{"credHelpers":{{"{}":"strata-test"}}}}"#, reg.host()))
        .unwrap();
    env.set("PATH", &format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()));
    let v = env.json(&["push", &src, &format!("{}/auth/hello:helper", reg.host())]);
    assert_eq!(v["digest"], digest.as_str());

    // no credentials at all: a clear message listing where strata looked
    let env = Env::new();
    let o = env.run(&["push", &src, &format!("{}/auth/hello:none", reg.host())]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("requires authentication")
            && err.contains("no credentials were found")
            && err.contains(&reg.host()),
        "{err}"
    );
    assert!(err.contains("config.json"), "lists the files searched: {err}");
    // The messages docs/registry.md shows.
    let o = env.run(&["push", &src, &format!("{}/a/b:1", reg.host())]);
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("no_credentials", env.scrub(&o));
    let o = env.run(&["push", &src, &format!("{}/a/b:1", reg.host()), "--creds", &format!("{USER}:nope")]);
    assert_eq!(o.status.code(), Some(1));
    let err = env.scrub(&o);
    assert!(!err.contains("nope"), "the password stays out: {err}");
    insta::assert_snapshot!("wrong_credentials", err);
}

fn base64_encode(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn token_registry_push_mount_and_anonymous_refusal() {
    if !tools(&["docker-registry", "skopeo", "umoci", "runc"]) {
        return;
    }
    let tokens = TokenServer::start();
    let reg = TestRegistry::start(Auth::Token(&tokens));
    let (layout, digest) = hello_image();
    let src = format!("oci:{}", layout.display());
    let c = creds();
    let env = Env::new();
    let dest = format!("{}/tok/hello:1", reg.host());
    assert_eq!(last_line(&env.ok(&["push", &src, &dest, "--creds", &c])), digest);
    assert_eq!(skopeo_digest(&dest, Some(&c)), digest);
    assert!(run_image(&dest, Some(&c), env.dir.path()).contains(HELLO));
    // anonymous pull works (the token server grants pull to everyone)
    let v = Env::new().json(&["inspect", &format!("docker://{dest}")]);
    assert_eq!(v["manifest_digest"], digest.as_str());

    // Mount across repositories: the token must also cover the source repository.
    let v = env.json(&["push", &src, &format!("{}/tok/copy:1", reg.host()), "--creds", &c]);
    assert!(v["blobs"].as_array().unwrap().iter().all(|b| b["action"] == "mounted"), "{v:#}");

    // Anonymous push: refused with a message naming the registry.
    let o = Env::new().run(&["push", &src, &format!("{}/tok/anon:1", reg.host())]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&reg.host()) && err.contains("401"), "{err}");
    assert!(tokens.issued() >= 3);
}

#[test]
fn wrong_password_is_named_and_never_printed() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let tokens = TokenServer::start();
    let basic = TestRegistry::start(Auth::Htpasswd);
    let token = TestRegistry::start(Auth::Token(&tokens));
    let (layout, _) = hello_image();
    let src = format!("oci:{}", layout.display());
    let secret = "wrong-Secret-4ab17e";
    for reg in [&basic, &token] {
        // from --creds
        let env = Env::new();
        let o =
            env.run(&["push", &src, &format!("{}/app/x:1", reg.host()), "--creds", &format!("{USER}:{secret}"), "-vv"]);
        let all = text(&o);
        assert_eq!(o.status.code(), Some(1), "{all}");
        assert!(!all.contains(secret), "the secret leaked:\n{all}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("401") && err.contains(&reg.host()) && err.contains("--creds") && err.contains(USER),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");

        // from a config file: the message names the file
        let mut env = Env::new();
        let authfile = env.path("auth.json");
        std::fs::write(
            &authfile,
            format!(r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{secret}"}}}}}}"#, reg.host()),
        )
        .unwrap();
        env.set("REGISTRY_AUTH_FILE", authfile.to_str().unwrap());
        let o = env.run(&["push", &src, &format!("{}/app/x:1", reg.host()), "-vv"]);
        let all = text(&o);
        assert_eq!(o.status.code(), Some(1), "{all}");
        assert!(!all.contains(secret), "the secret leaked:\n{all}");
        assert!(all.contains(authfile.to_str().unwrap()), "names the auth file: {all}");
    }
    // The right password with -vv: no secret either.
    let env = Env::new();
    let o = env.run(&["push", &src, &format!("{}/app/ok:1", token.host()), "--creds", &creds(), "-vv"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(PASSWORD), "the password leaked with -vv");
}

#[test]
fn chunked_uploads_and_build_push() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (big, big_digest) = big_image("chunked-big", 3, 21);
    let env = Env::new();
    let dest = format!("{}/chunks/big:1", reg.host());
    let v = env.json(&["push", &format!("oci:{}", big.display()), &dest, "--chunk-size", "1MiB"]);
    assert_eq!(v["digest"], big_digest.as_str());
    assert_eq!(skopeo_digest(&dest, None), big_digest);
    let patches = reg.log().matches("\"PATCH /v2/chunks/big/blobs/uploads/").count();
    assert!(patches >= 3, "3 MiB in 1 MiB chunks means several PATCHes (saw {patches})");

    // build --push: the digest printed is the one in the registry
    let dest = format!("{}/built/hello:1", reg.host());
    let spec = workspace().join("specs/hello.yaml");
    let out = env.ok(&[
        "build",
        spec.to_str().unwrap(),
        "-o",
        &format!("oci:{}", env.path("out").display()),
        "--push",
        &dest,
    ]);
    assert_eq!(skopeo_digest(&dest, None), last_line(&out));
}

#[test]
fn referrers_fall_back_to_the_tag_schema_on_distribution_2_8() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    use strata::registry::{Client, ClientOptions, Descriptor, Reference};
    let reg = TestRegistry::start(Auth::Open);
    let (layout, digest) = hello_image();
    let env = Env::new();
    let dest = format!("{}/ref/hello:1", reg.host());
    // The layout's SBOM goes along as a referrer, and reads back.
    let v = env.json(&["push", &format!("oci:{}", layout.display()), &dest]);
    assert_eq!(v["referrers"][0]["artifact_type"], "application/spdx+json", "{v:#}");
    assert_eq!(v["referrers"][0]["fallback_tag"], format!("sha256-{}", &digest["sha256:".len()..]).as_str());
    let local = env.ok(&["inspect", "--sbom", &format!("oci:{}", layout.display())]);
    let remote = env.ok(&["inspect", "--sbom", &format!("docker://{dest}")]);
    assert_eq!(local, remote);
    assert!(remote.contains("SPDX-2.3"));

    let client = Client::new(ClientOptions::default(), std::sync::Arc::new(strata::report::NullReporter)).unwrap();
    let r = Reference::parse(&dest).unwrap();
    let m = client.get_manifest(&r).unwrap();
    let subject = Descriptor::new(m.media_type.clone(), m.digest, m.bytes.len() as u64);
    let empty = client.push_blob_bytes(&r, b"{}", "application/vnd.oci.empty.v1+json").unwrap();
    let note = br#"{"reviewed":true}"#;
    let layer = client.push_blob_bytes(&r, note, "application/vnd.strata.test.note+json").unwrap();
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.strata.test.note+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.strata.test.note+json", "digest": layer.digest.to_string(), "size": note.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    });
    let bytes = strata::oci::canonical::to_vec(&artifact).unwrap();
    let out = client.push_referrer(&r, &subject, &bytes, "application/vnd.oci.image.manifest.v1+json").unwrap();
    let tag = format!("sha256-{}", m.digest.hex());
    assert_eq!(out.fallback_tag.as_deref(), Some(tag.as_str()), "2.8.2 has no referrers API");
    // idempotent
    client.push_referrer(&r, &subject, &bytes, "application/vnd.oci.image.manifest.v1+json").unwrap();
    let list = client.referrers(&r, &m.digest, Some("application/vnd.strata.test.note+json")).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, out.digest);
    // the image's own SBOM and provenance, pushed with it, are listed beside the new artifact
    assert_eq!(client.referrers(&r, &m.digest, None).unwrap().len(), 3);
    // skopeo sees the fallback tag as an index naming the artifact
    let o = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/ref/hello:{tag}", reg.host())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&out.digest.to_string()));
    assert_eq!(m.digest.to_string(), digest);
}

#[test]
fn tls_with_a_private_ca() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start_tls(Auth::Htpasswd);
    let (layout, digest) = hello_image();
    let src = format!("oci:{}", layout.display());
    let ca = workspace().join("registry-tests/fixtures/tls-ca.pem");
    let c = creds();
    let env = Env::new();
    let dest = format!("{}/tls/hello:1", reg.host());
    // The certificate does not verify against the system roots: no silent
    // fallback to plain HTTP, and the hint names --ca-file.
    let o = env.run(&["push", &src, &dest, "--creds", &c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate") && err.contains("--ca-file"), "{err}");
    // With the CA: HTTPS (the server speaks nothing else).
    let out = env.ok(&["push", &src, &dest, "--creds", &c, "--ca-file", ca.to_str().unwrap()]);
    assert_eq!(last_line(&out), digest);
    // --insecure-registry: TLS without verification, for that host only.
    let v = env.json(&["inspect", &format!("docker://{dest}"), "--creds", &c, "--insecure-registry", &reg.host()]);
    assert_eq!(v["manifest_digest"], digest.as_str());
}

#[test]
fn docker_v2_manifests_are_read() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (layout, _) = hello_image();
    let dest = format!("{}/docker/hello:v2s2", reg.host());
    let o = skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:1.0", layout.display()),
        &format!("docker://{dest}"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let want = skopeo_digest(&dest, None);
    let env = Env::new();
    let v = env.json(&["inspect", &format!("docker://{dest}")]);
    assert_eq!(v["media_type"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(v["manifest_digest"], want.as_str());
    assert_eq!(v["config"]["config"]["Entrypoint"][0], "/hello");
    let out = env.ok(&["pull", &dest, "-o", &format!("oci:{}", env.path("pulled").display())]);
    assert_eq!(last_line(&out), want);
    // and it pushes back byte for byte
    let back = format!("{}/docker/back:1", reg.host());
    env.ok(&["push", &format!("oci:{}:v2s2", env.path("pulled").display()), &back]);
    assert_eq!(skopeo_digest(&back, None), want);
}

#[test]
fn image_index_is_pushed_whole_and_resolved_on_read() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (layout, digest) = hello_image();
    let env = Env::new();
    // A layout whose tag names an index over the hello image.
    let (dir, idx_digest) = index_layout(&env, &layout, &digest);

    let dest = format!("{}/multi/hello:1", reg.host());
    let v = env.json(&["push", &format!("oci:{}:multi", dir.display()), &dest]);
    assert_eq!(v["digest"], idx_digest.to_string().as_str());
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "the image manifest, then the index: {v:#}");
    assert_eq!(skopeo_digest(&dest, None), idx_digest.to_string());
    let v = env.json(&["inspect", &format!("docker://{dest}")]);
    assert_eq!(v["index_digest"], idx_digest.to_string().as_str());
    assert_eq!(v["manifest_digest"], digest.as_str());
    let out =
        env.ok(&["pull", &dest, "-o", &format!("oci:{}", env.path("pulled").display()), "--platform", "linux/amd64"]);
    assert_eq!(last_line(&out), digest);
}

/// A spec with `platforms:` is pushed as an index: both images (each with
/// its SBOM) first, then the index; skopeo reads the index and each
/// platform's config back.
#[test]
fn a_multi_platform_build_is_pushed_as_an_index() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let env = Env::new();
    let spec = env.path("multi.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: multi\ntag: \"1\"\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - name: base\n    files: [{path: /etc/motd, content: \"hi\\n\"}]\n",
    )
    .unwrap();
    let dest = format!("{}/multi/base:1", reg.host());
    let out = env.ok(&[
        "build",
        spec.to_str().unwrap(),
        "-o",
        &format!("oci:{}", env.path("out").display()),
        "--push",
        &dest,
    ]);
    let index = last_line(&out);
    assert_eq!(skopeo_digest(&dest, None), index, "the registry holds the index under the tag");
    let o = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{dest}")]);
    let raw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    for arch in ["amd64", "arm64"] {
        let o = skopeo(&[
            "--override-arch",
            arch,
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(config["architecture"], arch);
    }
}
