//! `strata copy` against the real docker-registry: between two repositories,
//! from a layout to a registry and back, and an index whole; the digest does
//! not change and the SBOM referrer comes along. Judged by skopeo.

use strata_registry_tests::registry::Auth;
use strata_registry_tests::*;

/// sha256 of the manifest skopeo reads from a local `oci:DIR:TAG`.
fn skopeo_layout_digest(layout: &str) -> String {
    let o = skopeo(&["inspect", "--raw", layout]);
    assert!(o.status.success(), "skopeo inspect {layout}:\n{}", text(&o));
    strata::digest::Digest::of(&o.stdout).to_string()
}

/// The referrers fallback index skopeo reads for `subject` in `repo`.
fn skopeo_referrers(host: &str, repo: &str, subject: &str) -> String {
    let tag = format!("sha256-{}", &subject["sha256:".len()..]);
    let o = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/{repo}:{tag}")]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn copy_between_two_repositories_keeps_the_digest_and_the_sbom() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (layout, digest) = hello_image();
    let env = Env::new();
    let a = format!("{}/team-a/hello:1.0", reg.host());
    let b = format!("{}/team-b/hello:1.0", reg.host());
    env.ok(&["push", &format!("oci:{}", layout.display()), &a]);

    let v = env.json(&["copy", &format!("docker://{a}"), &format!("docker://{b}")]);
    assert_eq!(v["digest"], digest.as_str(), "{v:#}");
    assert_eq!(v["referrers"][0]["artifact_type"], "application/spdx+json", "{v:#}");
    assert_eq!(skopeo_digest(&b, None), digest, "skopeo reads the same manifest in the second repository");
    // The SBOM artifact is listed for the image in the second repository too.
    let sbom_digest = v["referrers"][0]["digest"].as_str().unwrap().to_string();
    assert!(skopeo_referrers(&reg.host(), "team-b/hello", &digest).contains(&sbom_digest));
    let local = env.ok(&["inspect", "--sbom", &format!("oci:{}", layout.display())]);
    let remote = env.ok(&["inspect", "--sbom", &format!("docker://{b}")]);
    assert_eq!(local, remote);

    // Copying again moves no bytes: every blob is already there.
    let v = env.json(&["copy", &format!("docker://{a}"), &format!("docker://{b}")]);
    assert_eq!(v["bytes_sent"], 0, "{v:#}");
}

#[test]
fn copy_from_a_layout_to_a_registry_and_back() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (layout, digest) = hello_image();
    let env = Env::new();
    // No tag on the destination: the layout's tag (1.0) is kept.
    let out =
        env.ok(&["copy", &format!("oci:{}:1.0", layout.display()), &format!("docker://{}/copied/hello", reg.host())]);
    assert_eq!(last_line(&out), digest);
    let dest = format!("{}/copied/hello:1.0", reg.host());
    assert_eq!(skopeo_digest(&dest, None), digest);

    let back = env.path("back");
    let out = env.ok(&["copy", &format!("docker://{dest}"), &format!("oci:{}", back.display())]);
    assert_eq!(last_line(&out), digest);
    assert_eq!(skopeo_layout_digest(&format!("oci:{}:1.0", back.display())), digest);
    let local = env.ok(&["inspect", "--sbom", &format!("oci:{}", layout.display())]);
    let copied = env.ok(&["inspect", "--sbom", &format!("oci:{}", back.display())]);
    assert_eq!(local, copied, "the SBOM referrer came back into the layout");
    // The two layouts are the same image.
    let o = env.run(&["diff", &format!("oci:{}", layout.display()), &format!("oci:{}", back.display())]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn an_index_is_copied_whole() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = TestRegistry::start(Auth::Open);
    let (layout, digest) = hello_image();
    let env = Env::new();
    // A layout whose tag names an index over the hello image.
    let (dir, idx) = index_layout(&env, &layout, &digest);

    let dest = format!("{}/multi/hello:2", reg.host());
    let out = env.ok(&["copy", &format!("oci:{}:multi", dir.display()), &format!("docker://{dest}")]);
    assert_eq!(last_line(&out), idx.to_string());
    assert_eq!(skopeo_digest(&dest, None), idx.to_string(), "the index keeps its digest");
    // ... and back into a layout, still the index.
    let back = env.path("multi-back");
    let out = env.ok(&["copy", &format!("docker://{dest}"), &format!("oci:{}", back.display())]);
    assert_eq!(last_line(&out), idx.to_string());
    assert_eq!(skopeo_layout_digest(&format!("oci:{}:2", back.display())), idx.to_string());
    // A docker-archive holds one image: refused with a reason.
    let o = env.run(&["copy", &format!("docker://{dest}"), &format!("docker-archive:{}", env.path("x.tar").display())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("holds one image") && text(&o).contains("hint:"), "{}", text(&o));
}
