//! The whole runtime config: `strata inspect` shows every field and the
//! annotations; `config.healthcheck` lands where Docker and podman read it;
//! `config.volumes` and `annotations_from_labels` reach the image. skopeo
//! and podman are the judges of what the image holds.

use crate::common;

use std::path::Path;

use common::*;

const SPEC: &str = r#"version: 1
name: svc
tag: "1"
epoch: 1700000000
annotations_from_labels: true
annotations: {org.opencontainers.image.vendor: Example Corp}
layers:
  - name: app
    files: [{path: /srv/ok, content: "ok\n"}]
config:
  user: "1000:1000"
  workdir: /srv
  env: {LANG: C.UTF-8}
  entrypoint: [/srv/app]
  cmd: [--serve]
  ports: ["8888", 53/udp]
  volumes: [/data, /cache]
  labels: {org.opencontainers.image.source: "https://example.org/svc", org.opencontainers.image.vendor: Label Corp}
  stop_signal: SIGINT
  healthcheck:
    test: [curl, -f, "http://localhost:8888/"]
    interval: 30s
    timeout: 5s
    start_period: 1m
    start_interval: 2s
    retries: 3
"#;

fn build(dir: &Path, output: &str) {
    let o = run(strata()
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(["-q", "build", "spec.yaml", "-o", output])
        .current_dir(dir));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn inspect_shows_the_whole_config_and_the_annotations() {
    let t = tempfile::tempdir().unwrap();
    fs_err::write(t.path().join("spec.yaml"), SPEC).unwrap();
    build(t.path(), "oci:out");
    let o = run(strata().args(["inspect", "oci:out:1"]).current_dir(t.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    // Every digest is reproducible: nothing to redact.
    insta::assert_snapshot!("inspect_whole_config", stdout(&o));
}

#[test]
fn healthcheck_volumes_and_label_annotations_are_where_runtimes_read_them() {
    let t = tempfile::tempdir().unwrap();
    fs_err::write(t.path().join("spec.yaml"), SPEC).unwrap();
    build(t.path(), "oci:out");
    build(t.path(), "docker-archive:svc.tar");
    let expected = serde_json::json!({
        "Test": ["CMD", "curl", "-f", "http://localhost:8888/"],
        "Interval": 30_000_000_000u64,
        "Timeout": 5_000_000_000u64,
        "StartPeriod": 60_000_000_000u64,
        "StartInterval": 2_000_000_000u64,
        "Retries": 3
    });
    if have("skopeo") {
        let layout = format!("oci:{}:1", t.path().join("out").display());
        let o = run(std::process::Command::new("skopeo").args(["inspect", "--raw", "--config", &layout]));
        assert!(o.status.success(), "{}", stderr(&o));
        let config: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(config["config"]["Healthcheck"], expected);
        assert_eq!(config["config"]["Volumes"], serde_json::json!({"/cache": {}, "/data": {}}));
        let o = run(std::process::Command::new("skopeo").args(["inspect", "--raw", &layout]));
        let manifest: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let a = &manifest["annotations"];
        assert_eq!(a["org.opencontainers.image.source"], "https://example.org/svc", "a label mirrored: {a}");
        assert_eq!(a["org.opencontainers.image.vendor"], "Example Corp", "an annotation keeps its value: {a}");
    }
    if have("podman") {
        let store = t.path().join("podman");
        let podman = |args: &[&str]| {
            run(std::process::Command::new("podman")
                .arg("--root")
                .arg(store.join("root"))
                .arg("--runroot")
                .arg(store.join("run"))
                .args(["--storage-driver", "vfs"])
                .args(args))
        };
        let o = podman(&["load", "-i", &t.path().join("svc.tar").display().to_string()]);
        assert!(o.status.success(), "podman load: {}", stderr(&o));
        let o = podman(&["image", "inspect", "svc:1", "--format", "{{json .HealthCheck}}"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let seen: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        // podman 4 knows every field but StartInterval (Docker 25's).
        for k in ["Test", "Interval", "Timeout", "StartPeriod", "Retries"] {
            assert_eq!(seen[k], expected[k], "{k}: {seen}");
        }
        let o = podman(&["image", "inspect", "svc:1", "--format", "{{json .Config.Volumes}}"]);
        assert_eq!(stdout(&o).trim(), r#"{"/cache":{},"/data":{}}"#);
    }
}

#[test]
fn a_bad_healthcheck_is_located_with_a_hint() {
    let t = tempfile::tempdir().unwrap();
    let fails = |spec: &str| {
        fs_err::write(t.path().join("spec.yaml"), spec).unwrap();
        let o = run(strata().args(["-q", "build", "spec.yaml", "-o", "oci:out"]).current_dir(t.path()));
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        stderr(&o)
    };
    let base = "version: 1\nname: x\nlayers:\n  - files: [{path: /a, content: a}]\nconfig:\n  healthcheck:\n";
    insta::assert_snapshot!(
        "healthcheck_bad_interval",
        fails(&format!("{base}    test: [\"true\"]\n    interval: 30 seconds\n"))
    );
    insta::assert_snapshot!("healthcheck_unquoted_word", fails(&format!("{base}    test: [true]\n")));
    insta::assert_snapshot!("healthcheck_no_command", fails(&format!("{base}    test: [CMD]\n")));
    // A string is a shell command.
    fs_err::write(t.path().join("spec.yaml"), format!("{base}    test: \"pg_isready || exit 1\"\n")).unwrap();
    let o = run(strata().args(["-q", "build", "spec.yaml", "-o", "oci:out"]).current_dir(t.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(strata().args(["inspect", "oci:out"]).current_dir(t.path()));
    assert!(stdout(&o).contains(r#"healthcheck ["CMD-SHELL","pg_isready || exit 1"]"#), "{}", stdout(&o));
}
