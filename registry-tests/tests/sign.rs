//! Signatures (docs/signing.md) against the real docker-registry with
//! htpasswd auth, judged by skopeo from Debian 13 (containers/image with
//! sigstore support; installed into target/ by
//! scripts/install-skopeo-sigstore.sh, or named by STRATA_SKOPEO_SIGSTORE):
//! a `policy.json` requiring `sigstoreSigned` with Strata's public key
//! accepts what `strata sign` signed and refuses tampered and unsigned
//! images; and `strata verify` accepts what skopeo signed with a key from
//! `strata key generate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

const KEY_PASSWORD: &str = "pw-never-printed-7c1e";

/// The sigstore-capable skopeo, or None (skip; a failure with STRATA_REQUIRE_TOOLS=1).
fn sigstore_skopeo() -> Option<PathBuf> {
    let p = std::env::var_os("STRATA_SKOPEO_SIGSTORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/skopeo-sigstore/skopeo"));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("no sigstore-capable skopeo at {} (run scripts/install-skopeo-sigstore.sh)", p.display());
    if std::env::var("STRATA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{msg}; STRATA_REQUIRE_TOOLS=1 forbids skipping");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

struct Judge {
    bin: PathBuf,
    policy: PathBuf,
    registries_d: PathBuf,
}

impl Judge {
    /// A skopeo whose policy admits only images of `repo` (`host/name`)
    /// signed by `pubkey`, reading sigstore attachments.
    fn new(bin: &Path, dir: &Path, repo: &str, pubkey: &Path) -> Judge {
        std::fs::create_dir_all(dir).unwrap();
        let policy = dir.join("policy.json");
        let p = serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {repo: [{"type": "sigstoreSigned", "keyPath": pubkey}]},
                "dir": {"": [{"type": "insecureAcceptAnything"}]},
                "oci": {"": [{"type": "insecureAcceptAnything"}]}
            }
        });
        std::fs::write(&policy, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
        let registries_d = dir.join("registries.d");
        std::fs::create_dir_all(&registries_d).unwrap();
        std::fs::write(registries_d.join("default.yaml"), "default-docker:\n  use-sigstore-attachments: true\n")
            .unwrap();
        Judge { bin: bin.to_path_buf(), policy, registries_d }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--registries.d")
            .arg(&self.registries_d)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running skopeo")
    }

    /// `skopeo copy docker://REF dir:DEST`: Ok when the policy admits it.
    fn copy(&self, reference: &str, dest: &Path) -> Output {
        let creds = format!("{USER}:{PASSWORD}");
        let d = format!("dir:{}", dest.display());
        let r = format!("docker://{reference}");
        self.run(&["copy", "--src-tls-verify=false", "--src-creds", &creds, &r, &d])
    }
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

fn assert_no_secret(o: &Output, what: &str) {
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!all.contains(KEY_PASSWORD), "{what}: the key password was printed:\n{all}");
    assert!(!all.contains("PRIVATE KEY"), "{what}: private key material was printed:\n{all}");
}

fn gen_key(env: &Env, prefix: &Path) -> Output {
    let o = env.run(&["key", "generate", prefix.to_str().unwrap()]);
    assert!(o.status.success(), "key generate: {}", text(&o));
    assert_no_secret(&o, "key generate");
    o
}

#[test]
fn strata_signs_skopeo_judges_and_strata_verifies_skopeo() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let Some(sk) = sigstore_skopeo() else { return };
    let reg = TestRegistry::start(Auth::Htpasswd);
    let mut env = Env::new();
    env.set("STRATA_KEY_PASSWORD", KEY_PASSWORD);
    let key = env.path("signer");
    gen_key(&env, &key);
    let (priv_key, pub_key) = (env.path("signer.key"), env.path("signer.pub"));
    let pem = std::fs::read_to_string(&priv_key).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"), "{pem}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&priv_key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable only by its owner");
    }
    // Never overwritten.
    let o = env.run(&["key", "generate", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&priv_key).unwrap(), pem);

    let (layout, digest) = hello_image();
    let repo = format!("{}/strata/signed", reg.host());
    let signed = format!("{repo}:1");
    let c = creds();
    env.ok(&["push", &format!("oci:{}", layout.display()), &signed, "--creds", &c]);

    // Sign (with -vv: debug logs must not show the password either).
    let o = env.run(&["-vv", "sign", &signed, "--key", priv_key.to_str().unwrap(), "--creds", &c]);
    assert!(o.status.success(), "sign: {}", text(&o));
    assert_no_secret(&o, "sign -vv");
    assert_eq!(last_line(&String::from_utf8_lossy(&o.stdout)), digest);
    // Signing again adds nothing (deterministic signatures).
    let v = env.json(&["sign", &signed, "--key", priv_key.to_str().unwrap(), "--creds", &c]);
    assert_eq!(v[0]["added"], false, "{v:#}");

    let pubs = pub_key.to_str().unwrap();
    let o = env.run(&["verify", &signed, "--key", pubs, "--creds", &c]);
    assert_eq!(o.status.code(), Some(0), "verify: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("verified {repo}@{digest}")), "{}", text(&o));

    // The judge: skopeo's sigstoreSigned policy admits it.
    let judge = Judge::new(&sk, &env.path("judge"), &repo, &pub_key);
    let o = judge.copy(&signed, &env.path("copied"));
    assert!(o.status.success(), "skopeo must accept the Strata-signed image: {}", text(&o));

    // Unsigned: refused by both.
    let (big, big_digest) = big_image("sign-tamper", 1, 91);
    let unsigned = format!("{repo}:unsigned");
    env.ok(&["push", &format!("oci:{}", big.display()), &unsigned, "--creds", &c]);
    let o = judge.copy(&unsigned, &env.path("copied-unsigned"));
    assert!(!o.status.success(), "skopeo must refuse an unsigned image: {}", text(&o));
    let o = env.run(&["verify", &unsigned, "--key", pubs, "--creds", &c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no signature"), "{}", text(&o));

    // Tampered: the same image with a layer added, tagged `:1` in place of
    // the signed one, with the genuine signature copied to its `.sig` tag.
    env.ok(&["push", &format!("oci:{}", big.display()), &signed, "--creds", &c]);
    let sig_src = format!("docker://{repo}:sha256-{}.sig", &digest[7..]);
    let sig_dst = format!("docker://{repo}:sha256-{}.sig", &big_digest[7..]);
    let o = skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &c,
        "--dest-creds",
        &c,
        &sig_src,
        &sig_dst,
    ]);
    assert!(o.status.success(), "copying the signature: {}", text(&o));
    let o = judge.copy(&signed, &env.path("copied-tampered"));
    assert!(!o.status.success(), "skopeo must refuse a tampered image: {}", text(&o));
    let o = env.run(&["verify", &signed, "--key", pubs, "--creds", &c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("tampered"), "{}", text(&o));
    // The genuine manifest, by digest, still verifies.
    let o = env.run(&["verify", &format!("{repo}@{digest}"), "--key", pubs, "--creds", &c]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Wrong key: refused by both.
    let other = env.path("other");
    gen_key(&env, &other);
    let other_pub = env.path("other.pub");
    let o = env.run(&["verify", &format!("{repo}@{digest}"), "--key", other_pub.to_str().unwrap(), "--creds", &c]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("wrong key"), "{}", text(&o));
    let judge2 = Judge::new(&sk, &env.path("judge2"), &repo, &other_pub);
    let o = judge2.copy(&format!("{repo}@{digest}"), &env.path("copied-wrongkey"));
    assert!(!o.status.success(), "skopeo must refuse a signature by another key: {}", text(&o));

    // The reverse: skopeo signs with a key from `strata key generate`,
    // strata verifies.
    let pwfile = env.path("pw");
    std::fs::write(&pwfile, KEY_PASSWORD).unwrap();
    let by_skopeo = format!("{}/strata/by-skopeo:1", reg.host());
    let o = judge.run(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &c,
        "--sign-by-sigstore-private-key",
        priv_key.to_str().unwrap(),
        "--sign-passphrase-file",
        pwfile.to_str().unwrap(),
        &format!("oci:{}", layout.display()),
        &format!("docker://{by_skopeo}"),
    ]);
    assert!(o.status.success(), "skopeo signs with a Strata key: {}", text(&o));
    let o = env.run(&["verify", &by_skopeo, "--key", pubs, "--creds", &c]);
    assert_eq!(o.status.code(), Some(0), "strata verifies skopeo's signature: {}", text(&o));
}

#[test]
fn wrong_or_missing_password_is_a_clear_error_without_secrets() {
    let mut env = Env::new();
    env.set("STRATA_KEY_PASSWORD", KEY_PASSWORD);
    let key = env.path("k");
    gen_key(&env, &key);
    let k = env.path("k.key");
    let ks = k.to_str().unwrap();

    let mut wrong = Env::new();
    wrong.set("STRATA_KEY_PASSWORD", "not-the-password");
    // No registry is contacted: the key is opened first.
    let o = wrong.run(&["sign", "127.0.0.1:9/x/y:1", "--key", ks]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not decrypt"), "{}", text(&o));
    assert!(!text(&o).contains("not-the-password"), "{}", text(&o));

    let none = Env::new();
    let o = none.run(&["sign", "127.0.0.1:9/x/y:1", "--key", ks]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("STRATA_KEY_PASSWORD"), "{}", text(&o));

    // The key from a variable works the same (and is never echoed).
    let mut from_env = Env::new();
    from_env.set("STRATA_KEY_PASSWORD", "not-the-password");
    from_env.set("MY_KEY", &std::fs::read_to_string(&k).unwrap());
    let o = from_env.run(&["sign", "127.0.0.1:9/x/y:1", "--key", "env://MY_KEY"]);
    assert!(text(&o).contains("does not decrypt the private key in $MY_KEY"), "{}", text(&o));
    assert_no_secret(&o, "sign with a key in a variable");
}

#[test]
fn signing_an_index_signs_it_and_each_image_in_it() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let Some(sk) = sigstore_skopeo() else { return };
    let reg = TestRegistry::start(Auth::Htpasswd);
    let mut env = Env::new();
    env.set("STRATA_KEY_PASSWORD", KEY_PASSWORD);
    gen_key(&env, &env.path("idx"));
    let (priv_key, pub_key) = (env.path("idx.key"), env.path("idx.pub"));
    let (layout, digest) = hello_image();
    // A layout whose tag names an index over the hello image.
    let (dir, idx) = index_layout(&env, &layout, &digest);

    let c = creds();
    let repo = format!("{}/multi/hello", reg.host());
    let dest = format!("{repo}:2");
    env.ok(&["push", &format!("oci:{}:multi", dir.display()), &dest, "--creds", &c]);
    let v = env.json(&["sign", &dest, "--key", priv_key.to_str().unwrap(), "--creds", &c]);
    let signed: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["digest"].as_str().unwrap()).collect();
    assert_eq!(signed, vec![idx.to_string().as_str(), digest.as_str()], "{v:#}");
    let v = env.json(&["verify", &dest, "--key", pub_key.to_str().unwrap(), "--creds", &c]);
    assert_eq!(v["verified"], true, "{v:#}");
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "{v:#}");
    // The platform image alone, by digest, is signed too: skopeo admits it.
    let judge = Judge::new(&sk, &env.path("judge"), &repo, &pub_key);
    let o = judge.copy(&format!("{repo}@{digest}"), &env.path("copied"));
    assert!(o.status.success(), "skopeo must accept the signed platform image: {}", text(&o));
}

#[test]
fn build_push_sign_key_signs_the_image_and_its_provenance_and_audit_starts_from_it() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let mut env = Env::new();
    env.set("STRATA_KEY_PASSWORD", KEY_PASSWORD);
    gen_key(&env, &env.path("b"));
    let (priv_key, pub_key) = (env.path("b.key"), env.path("b.pub"));
    let specs = env.path("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::copy(workspace().join("specs/hello.yaml"), specs.join("hello.yaml")).unwrap();
    let dest = format!("{}/built/hello:1.0", reg.host());
    let o = env.run(&[
        "-vv",
        "build",
        specs.join("hello.yaml").to_str().unwrap(),
        "-o",
        &format!("oci:{}", env.path("out").display()),
        "--push",
        &dest,
        "--sign-key",
        priv_key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_no_secret(&o, "build --sign-key -vv");
    let digest = last_line(&String::from_utf8_lossy(&o.stdout));
    let o = env.run(&["verify", &dest, "--key", pub_key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&digest), "{}", text(&o));

    // The provenance pushed with it is signed by the key; audit starts from it.
    let o = env.run(&[
        "audit",
        &format!("docker://{dest}"),
        "--source",
        specs.to_str().unwrap(),
        "--provenance-key",
        pub_key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("identical:"), "{}", text(&o));
}
