//! The registry layer cache with a `python:` source, whose planning reads
//! every wheel: runner A records the plan and the layers, runner B (an
//! empty local cache) builds the same image without downloading a wheel.

#[path = "../../tests/wheels_support/mod.rs"]
mod wheels_support;

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;
use wheels_support::{pylock, Member, Server, Wheel};

fn wheel(dist: &str, version: &str, n: usize) -> Wheel {
    Wheel::new(dist, version)
        .with(Member::file(&format!("{dist}/__init__.py"), format!("VERSION = '{version}'\n"), 0o644))
        .with(Member::file(&format!("{dist}/data.bin"), pseudo_random(n as u64, n), 0o644))
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
    let wheels = [wheel("alpha", "1.0", 60_000), wheel("beta", "2.0", 30_000), wheel("gamma", "0.1", 5_000)];
    let mut keep = Vec::new();
    for w in &wheels {
        let bytes = w.bytes();
        let url = server.put(&w.file_name(), bytes.clone());
        keep.push((w.dist.clone(), w.version.clone(), format!("url = \"{url}\""), bytes));
    }
    let entries: Vec<_> = keep.iter().map(|(n, v, l, b)| (n.as_str(), v.as_str(), l.clone(), b.as_slice())).collect();
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
    let delta = wheel("delta", "1.0", 1_000);
    let bytes = delta.bytes();
    let url = server.put(&delta.file_name(), bytes.clone());
    let mut entries = entries.clone();
    entries.push(("delta", "1.0", format!("url = \"{url}\""), bytes.as_slice()));
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
