//! Faults injected by the proxy in front of a real docker-registry. Each
//! push either completes or fails with a clear error; after any failure no
//! tag points at a manifest with missing blobs; a rerun completes.

use std::time::{Duration, Instant};

use strata_registry_tests::proxy::{Fault, FaultProxy, Rule};
use strata_registry_tests::registry::Auth;
use strata_registry_tests::token::{TokenServer, SERVICE};
use strata_registry_tests::*;

const MIB: u64 = 1 << 20;

/// The 12 MiB test image (hello layers + one uncompressed random layer).
fn big() -> (String, String) {
    let (dir, digest) = big_image("faults-big", 12, 7);
    (format!("oci:{}", dir.display()), digest)
}

fn blob_actions(v: &serde_json::Value) -> Vec<(String, u64, u64)> {
    v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["action"].as_str().unwrap().to_string(),
                b["attempts"].as_u64().unwrap(),
                b["bytes_sent"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn connection_dropped_mid_blob_is_retried() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (src, digest) = big();
    proxy.rule(Rule {
        method: "PUT",
        path: "/blobs/uploads/",
        min_body: 4 * MIB,
        times: 1,
        fault: Fault::DropAfter(2 * MIB),
    });
    let env = Env::new();
    let dest = format!("{}/faults/drop:1", proxy.host());
    let v = env.json(&["push", &src, &dest]);
    assert_eq!(v["digest"], digest.as_str());
    let big_blob = blob_actions(&v).into_iter().max_by_key(|b| b.2).unwrap();
    assert_eq!((big_blob.0.as_str(), big_blob.1), ("uploaded", 2), "{v:#}");
    assert!(big_blob.2 > 12 * MIB, "the first, cut attempt counts too: {v:#}");
    assert_eq!(proxy.stats().faults.len(), 1);
    assert_eq!(proxy.stats().puts_without_length, 0, "blob PUTs carry Content-Length");
    assert_eq!(skopeo_digest(&format!("{}/faults/drop:1", reg.host()), None), digest);
}

#[test]
fn server_errors_and_rate_limits_are_retried() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (layout, digest) = hello_image();
    let status = |status, retry_after| Fault::Status { status, retry_after };
    proxy.rule(Rule { method: "HEAD", path: "/blobs/sha256:", min_body: 0, times: 2, fault: status(503, None) });
    proxy.rule(Rule { method: "POST", path: "/blobs/uploads/", min_body: 0, times: 1, fault: status(429, Some(1)) });
    proxy.rule(Rule { method: "POST", path: "/blobs/uploads/", min_body: 0, times: 1, fault: status(500, None) });
    proxy.rule(Rule { method: "PUT", path: "/blobs/uploads/", min_body: 0, times: 1, fault: status(502, None) });
    proxy.rule(Rule { method: "PUT", path: "/manifests/", min_body: 0, times: 1, fault: status(503, None) });
    let env = Env::new();
    let started = Instant::now();
    let o = env.run(&["push", &format!("oci:{}", layout.display()), &format!("{}/faults/errors:1", proxy.host())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(proxy.stats().faults.len(), 6, "{:?}", proxy.stats().faults);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HTTP 429") && err.contains("retrying in 1.0s"),
        "warnings name the status and the wait: {err}"
    );
    assert_eq!(skopeo_digest(&format!("{}/faults/errors:1", reg.host()), None), digest);
}

#[test]
fn redirect_to_another_port_gets_no_credentials() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Htpasswd);
    let proxy = FaultProxy::start(reg.addr);
    // The alternate port plays object storage with a presigned URL: it
    // forwards with credentials of its own and records whether the client sent any.
    let basic = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    proxy.modes(|m| m.alt_auth = Some(basic));
    proxy.rule(Rule { method: "PUT", path: "/blobs/uploads/", min_body: 1, times: 100, fault: Fault::RedirectToAlt });
    let (src, digest) = big();
    let env = Env::new();
    let creds = format!("{USER}:{PASSWORD}");
    let v = env.json(&["push", &src, &format!("{}/faults/redirect:1", proxy.host()), "--creds", &creds]);
    assert_eq!(v["digest"], digest.as_str());
    let s = proxy.stats();
    assert!(s.alt_requests >= 3, "every blob PUT was redirected: {s:?}");
    assert_eq!(s.alt_with_authorization, 0, "Authorization must not follow a redirect to another port");
    assert_eq!(skopeo_digest(&format!("{}/faults/redirect:1", reg.host()), Some(&creds)), digest);
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn relative_locations_monolithic_and_chunked() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    proxy.modes(|m| m.relative_location = true);
    let (src, digest) = big();
    let env = Env::new();
    env.ok(&["push", &src, &format!("{}/faults/rel:1", proxy.host())]);
    // A fresh cache, so nothing is mounted from the first push.
    Env::new().ok(&["push", &src, &format!("{}/faults/relchunk:1", proxy.host()), "--chunk-size", "4MiB"]);
    for repo in ["rel", "relchunk"] {
        assert_eq!(skopeo_digest(&format!("{}/faults/{repo}:1", reg.host()), None), digest);
    }
    assert!(reg.log().contains("\"PATCH /v2/faults/relchunk/blobs/uploads/"), "chunks went through PATCH");
}

#[test]
fn expired_tokens_are_renewed() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let tokens = TokenServer::start();
    // Tokens really expire after 2 s, but clients are told 300 s: only a
    // 401 can tell the client to renew.
    tokens.set_lifetime(2, 300);
    let reg = TestRegistry::start(Auth::Token(&tokens));
    let proxy = FaultProxy::start(reg.addr);
    let realm = tokens.realm();
    proxy.modes(|m| {
        m.expire_tokens = Some((realm, SERVICE.to_string()));
        m.throttle = Some(4 * MIB); // the 12 MiB layer takes ~3 s
    });
    let (src, digest) = big();
    let env = Env::new();
    let creds = format!("{USER}:{PASSWORD}");
    let v = env.json(&["push", &src, &format!("{}/faults/tokens:1", proxy.host()), "--creds", &creds]);
    assert_eq!(v["digest"], digest.as_str());
    assert!(proxy.stats().expired_tokens >= 1, "a token expired mid-push: {:?}", proxy.stats());
    assert!(tokens.issued() >= 2, "and was renewed ({} issued)", tokens.issued());
    assert_eq!(skopeo_digest(&format!("{}/faults/tokens:1", reg.host()), Some(&creds)), digest);
}

#[test]
fn four_mib_request_cap() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    proxy.modes(|m| m.body_cap = Some(4 * MIB));
    let (src, digest) = big();
    let env = Env::new();

    // Chunks larger than the cap: a clear failure, and no tag.
    let dest = format!("{}/faults/cap:1", proxy.host());
    let o = env.run(&["push", &src, &dest, "--chunk-size", "8MiB"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HTTP 416")
            && err.contains("exceeds the maximum permissible limit")
            && err.contains("--chunk-size"),
        "{err}"
    );
    insta::assert_snapshot!("request_cap", env.scrub(&o));
    assert_tag_consistent(&format!("{}/faults/cap:1", reg.host()), None);

    // Rerun with chunks under the cap: completes.
    env.ok(&["push", &src, &dest, "--chunk-size", "2MiB"]);
    assert_eq!(skopeo_digest(&format!("{}/faults/cap:1", reg.host()), None), digest);

    // A monolithic push that hits the cap falls back to 4 MiB chunks by itself.
    let o = Env::new().run(&["push", &src, &format!("{}/faults/capauto:1", proxy.host())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("chunks instead"), "{}", text(&o));
    assert_eq!(skopeo_digest(&format!("{}/faults/capauto:1", reg.host()), None), digest);
}

#[test]
fn persistent_failures_leave_no_dangling_tag_and_a_rerun_completes() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (src, digest) = big();
    let env = Env::new();
    let dest = format!("{}/faults/persist:1", proxy.host());
    let direct = format!("{}/faults/persist:1", reg.host());

    // Every attempt at the big blob is cut.
    proxy.rule(Rule {
        method: "PUT",
        path: "/blobs/uploads/",
        min_body: 4 * MIB,
        times: 100,
        fault: Fault::DropAfter(MIB),
    });
    let o = env.run(&["push", &src, &dest, "--retries", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("after 2 attempts") && err.contains(&proxy.host()), "{err}");
    assert_tag_consistent(&direct, None);
    proxy.clear_rules();

    // The manifest PUT keeps failing.
    proxy.rule(Rule {
        method: "PUT",
        path: "/manifests/",
        min_body: 0,
        times: 100,
        fault: Fault::Status { status: 503, retry_after: None },
    });
    let o = env.run(&["push", &src, &dest, "--retries", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("HTTP 503") && err.contains("faults/persist"), "{err}");
    assert_tag_consistent(&direct, None);
    proxy.clear_rules();

    // A rerun completes, sending only what is missing.
    let v = env.json(&["push", &src, &dest]);
    assert_eq!(v["digest"], digest.as_str());
    assert!(blob_actions(&v).iter().all(|b| b.0 == "skipped"), "blobs were already uploaded: {v:#}");
    assert_eq!(skopeo_digest(&direct, None), digest);
    assert_tag_consistent(&direct, None);
}

#[test]
fn kill_9_mid_push_then_rerun() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    proxy.modes(|m| m.throttle = Some(4 * MIB));
    let (src, digest) = big();
    let env = Env::new();
    let dest = format!("{}/faults/killed:1", proxy.host());
    let mut child = env
        .strata(&["push", &src, &dest])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.body_bytes() < 3 * MIB {
        assert!(Instant::now() < deadline, "the push never got going");
        assert!(child.try_wait().unwrap().is_none(), "the push ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let direct = format!("{}/faults/killed:1", reg.host());
    assert_tag_consistent(&direct, None);
    proxy.modes(|m| m.throttle = None);
    let out = env.ok(&["push", &src, &dest]);
    assert_eq!(last_line(&out), digest);
    assert_eq!(skopeo_digest(&direct, None), digest);
}

#[test]
fn a_failed_pull_leaves_nothing_in_the_way_of_the_retry() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (layout, digest) = hello_image();
    let env = Env::new();
    let dest = format!("{}/faults/pull:1", proxy.host());
    env.ok(&["push", &format!("oci:{}", layout.display()), &dest]);
    let status = Fault::Status { status: 500, retry_after: None };
    proxy.rule(Rule { method: "GET", path: "/blobs/sha256:", min_body: 0, times: 1, fault: status });
    let out = env.path("pulled");
    let o = env.run(&["pull", &dest, "-o", &format!("oci:{}", out.display()), "--retries", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("HTTP 500"), "{}", text(&o));
    assert!(!out.exists(), "no half-written layout is left behind");
    let o = env.ok(&["pull", &dest, "-o", &format!("oci:{}", out.display())]);
    assert_eq!(last_line(&o), digest);
}

/// Pulls `dest` into a fresh layout with short network timeouts; returns
/// the output and how long it took.
fn pull_with_short_timeouts(env: &Env, dest: &str) -> (std::process::Output, Duration) {
    let out = env.path("slow-pull");
    let started = Instant::now();
    let o = env
        .strata(&["pull", dest, "-o", &format!("oci:{}", out.display()), "--retries", "3"])
        .env("STRATA_NET_IDLE_TIMEOUT", "1s")
        .env("STRATA_NET_MIN_SPEED", "200")
        .env("STRATA_NET_DEADLINE", "3s")
        .output()
        .unwrap();
    assert!(!out.exists(), "a failed pull leaves no layout: {}", text(&o));
    (o, started.elapsed())
}

#[test]
fn a_silent_registry_is_cut_off_by_the_idle_timeout_and_the_deadline() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (layout, _) = hello_image();
    let env = Env::new();
    let dest = format!("{}/faults/silent:1", proxy.host());
    env.ok(&["push", &format!("oci:{}", layout.display()), &dest]);
    // Every blob download stalls for two minutes: without the timeouts the
    // pull would hang for as long.
    let fault = Fault::Silent(Duration::from_secs(120));
    proxy.rule(Rule { method: "GET", path: "/blobs/sha256:", min_body: 0, times: 100, fault });
    let (o, took) = pull_with_short_timeouts(&env, &dest);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("SILENT: {err}");
    assert!(err.contains("STRATA_NET_IDLE_TIMEOUT") || err.contains("timed out"), "names the stall: {err}");
    assert!(err.contains("deadline") && err.contains("STRATA_NET_DEADLINE"), "says why it stopped: {err}");
    assert!(took < Duration::from_secs(60), "bounded: {took:?}");
}

#[test]
fn a_drip_feeding_registry_is_cut_off_by_the_minimum_speed() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let proxy = FaultProxy::start(reg.addr);
    let (layout, digest) = hello_image();
    let env = Env::new();
    let dest = format!("{}/faults/drip:1", proxy.host());
    env.ok(&["push", &format!("oci:{}", layout.display()), &dest]);
    // A byte every 100 ms (10 B/s) keeps resetting the idle timeout.
    proxy.rule(Rule {
        method: "GET",
        path: "/blobs/sha256:",
        min_body: 0,
        times: 100,
        fault: Fault::Drip(Duration::from_millis(100)),
    });
    let (o, took) = pull_with_short_timeouts(&env, &dest);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("DRIP: {err}");
    assert!(err.contains("too slow") && err.contains("200 bytes per second"), "{err}");
    assert!(err.contains("STRATA_NET_DEADLINE"), "{err}");
    assert!(took < Duration::from_secs(60), "bounded: {took:?}");
    // Once the registry behaves, the same pull completes.
    proxy.clear_rules();
    let out = env.path("slow-pull");
    let o = env.ok(&["pull", &dest, "-o", &format!("oci:{}", out.display())]);
    assert_eq!(last_line(&o), digest);
}
