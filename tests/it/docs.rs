//! The error examples in README.md and docs/*.md are what the binary
//! prints. Every fenced block that shows an `error:` line names, in an HTML
//! comment just above it, the snapshot that holds the same message:
//!
//! ```text
//! <!-- snapshot: tests/it/snapshots/it__docs__unknown_field.snap -->
//! ```
//!
//! Each snapshot is kept current by the test that makes it (in this file
//! for the examples that can be replayed here with the docs' own file
//! names, elsewhere for those that need a registry or built wheels). A doc
//! example matches when its lines from `error:` on are a run of the
//! snapshot's lines, where `…` in the doc and a placeholder in the snapshot
//! (`[DIR]`, `[PORT]`, `TMP`, a loopback origin) stand for any text.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;

// ---------------------------------------------------------------------------
// The check of the docs.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    Any,
}

/// A doc line: `…` is a wildcard.
fn doc_tokens(line: &str) -> Vec<Tok> {
    line.chars().map(|c| if c == '…' { Tok::Any } else { Tok::Lit(c) }).collect()
}

/// A snapshot line: placeholders are wildcards (a `[X]/` path prefix also
/// stands for no prefix at all).
fn snapshot_tokens(line: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut rest = line;
    'outer: while !rest.is_empty() {
        for origin in ["https://127.0.0.1:[PORT]", "http://127.0.0.1:[PORT]", "http://127.0.0.1:PORT"] {
            if let Some(r) = rest.strip_prefix(origin) {
                out.push(Tok::Any);
                rest = r;
                continue 'outer;
            }
        }
        if let Some(r) = rest.strip_prefix('[') {
            if let Some(end) = r.find(']') {
                let name = &r[..end];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    out.push(Tok::Any);
                    rest = r[end + 1..].strip_prefix('/').unwrap_or(&r[end + 1..]);
                    continue;
                }
            }
        }
        for word in ["TMP/", "TMP", "PORT"] {
            let boundary = out.last().is_none_or(|t| !matches!(t, Tok::Lit(c) if c.is_ascii_alphanumeric()));
            if boundary && rest.starts_with(word) {
                out.push(Tok::Any);
                rest = &rest[word.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(Tok::Lit(c));
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Two token lists match when each wildcard of either side can stand for
/// any run of the other side.
fn tokens_match(a: &[Tok], b: &[Tok]) -> bool {
    let (n, m) = (a.len(), b.len());
    // reach[i][j]: a[i..] and b[j..] still can match.
    let mut reach = vec![vec![false; m + 1]; n + 1];
    reach[n][m] = true;
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            if i == n && j == m {
                continue;
            }
            let v = match (a.get(i), b.get(j)) {
                (Some(Tok::Any), _) => reach[i + 1][j] || (j < m && reach[i][j + 1]),
                (_, Some(Tok::Any)) => reach[i][j + 1] || (i < n && reach[i + 1][j]),
                (Some(Tok::Lit(x)), Some(Tok::Lit(y))) => x == y && reach[i + 1][j + 1],
                _ => false,
            };
            reach[i][j] = v;
        }
    }
    reach[0][0]
}

/// The body of an insta snapshot file (after its `---` header).
fn snapshot_body(path: &Path) -> String {
    let text = fs_err::read_to_string(path).unwrap();
    match text.strip_prefix("---\n").and_then(|t| t.split_once("\n---\n")) {
        Some((_, body)) => body.to_string(),
        None => text,
    }
}

/// The error examples of one fenced block: each runs from an `error:` line
/// to the next prompt (`$ …`), a lone `…`, or the end of the block.
fn examples(block: &[&str]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for l in block {
        if l.starts_with("error:") {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            cur = Some(vec![l.to_string()]);
        } else if l.starts_with("$ ") || l.trim() == "…" {
            if let Some(c) = cur.take() {
                out.push(c);
            }
        } else if let Some(c) = &mut cur {
            c.push(l.to_string());
        }
    }
    out.extend(cur);
    out
}

/// Where a doc example does not match its snapshot, and why.
fn check_example(example: &[String], snapshot: &str, prefix: &str) -> Result<(), String> {
    let lines: Vec<String> = snapshot
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("{prefix}{l}") } else { l.to_string() })
        .collect();
    let doc: Vec<Vec<Tok>> = example.iter().map(|l| doc_tokens(l)).collect();
    let snap: Vec<Vec<Tok>> = lines.iter().map(|l| snapshot_tokens(l)).collect();
    for start in 0..snap.len() {
        if start + doc.len() <= snap.len() && doc.iter().zip(&snap[start..]).all(|(d, s)| tokens_match(d, s)) {
            return Ok(());
        }
    }
    // The first line that differs from the best candidate, for the message.
    let first = doc.first().cloned().unwrap_or_default();
    let start = snap.iter().position(|s| tokens_match(&first, s));
    let detail = match start {
        None => format!("no snapshot line matches\n  doc:      {}", example[0]),
        Some(s) => {
            let i = (0..doc.len()).find(|&i| snap.get(s + i).is_none_or(|l| !tokens_match(&doc[i], l))).unwrap_or(0);
            format!(
                "line {} differs\n  doc:      {}\n  snapshot: {}",
                i + 1,
                example[i],
                lines.get(s + i).map(String::as_str).unwrap_or("(end of snapshot)")
            )
        }
    };
    Err(detail)
}

#[test]
fn every_error_example_in_the_docs_matches_a_snapshot() {
    let mut files = vec![root().join("README.md")];
    for e in fs_err::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = fs_err::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].starts_with("```") {
                i += 1;
                continue;
            }
            let open = i;
            let close = (open + 1..lines.len()).find(|&j| lines[j].starts_with("```")).unwrap_or(lines.len());
            let block = &lines[open + 1..close];
            i = close + 1;
            let found = examples(block);
            if found.is_empty() {
                continue;
            }
            let tag = lines[..open]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- snapshot:"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(str::trim);
            let Some(tag) = tag else {
                problems
                    .push(format!("{shown}:{}: an error example without `<!-- snapshot: PATH -->` above it", open + 1));
                continue;
            };
            // `PATH[, PATH…]`, one per example; `prefix="…"` when the
            // snapshot is of a library error the binary prefixes.
            let (paths, prefix) = match tag.split_once(" prefix=\"") {
                Some((p, rest)) => (p, rest.trim_end_matches('"')),
                None => (tag, ""),
            };
            let paths: Vec<&str> = paths.split(',').map(str::trim).collect();
            if paths.len() != found.len() {
                problems.push(format!(
                    "{shown}:{}: {} error examples but {} snapshots named",
                    open + 1,
                    found.len(),
                    paths.len()
                ));
                continue;
            }
            for (example, path) in found.iter().zip(paths) {
                checked += 1;
                let snap = root().join(path);
                if !snap.is_file() {
                    problems.push(format!("{shown}:{}: no snapshot {path}", open + 1));
                    continue;
                }
                if let Err(why) = check_example(example, &snapshot_body(&snap), prefix) {
                    problems.push(format!("{shown}:{}: {path}: {why}", open + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "error examples in the docs that are not what strata prints:\n{}",
        problems.join("\n")
    );
    assert!(checked >= 15, "only {checked} examples found");
}

#[test]
fn the_matcher_finds_differences_and_allows_placeholders() {
    let ok = |d: &str, s: &str| tokens_match(&doc_tokens(d), &snapshot_tokens(s));
    assert!(ok("error: spec.yaml:4:5: x", "error: [TMP]/spec.yaml:4:5: x"));
    assert!(ok("error: /home/me/proj is outside", "error: [DIR]/proj is outside"));
    assert!(ok(
        "GET https://deb.debian.org/debian/pool/main/…: HTTP 404",
        "GET http://127.0.0.1:PORT/debian/pool/main/a.deb: HTTP 404"
    ));
    assert!(ok("after 3 attempts", "after [N] attempts"));
    assert!(!ok("expected one of `a`, `b`", "expected one of `a`, `b`, `c`"));
    assert!(!ok("error: x", "error: y"));
    let ex = vec!["error: a".to_string(), "hint: b".to_string()];
    assert!(check_example(&ex, "## case\nerror: a\nhint: b\n", "").is_ok());
    assert!(check_example(&ex, "error: a\nhint: c\n", "").unwrap_err().contains("line 2 differs"));
}

// ---------------------------------------------------------------------------
// The examples replayed here, with the docs' own file names.

fn strata_in(dir: &Path) -> std::process::Command {
    let mut c = strata();
    c.arg("--cache").arg(dir.join("cache")).arg("--quiet").current_dir(dir);
    c
}

fn failure(o: &std::process::Output, dir: &Path) -> String {
    assert_eq!(o.status.code(), Some(1), "expected a failure:\n{}{}", stdout(o), stderr(o));
    let real = fs_err::canonicalize(dir).unwrap().display().to_string();
    stderr(o).replace(&real, "[DIR]").replace(&dir.display().to_string(), "[DIR]")
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(&p, text).unwrap();
    p
}

/// specs/python-base.yaml and its layer file (and, with `lock`, its lock)
/// copied into `dir` as `specs/NAME.yaml`.
fn python_base(dir: &Path, name: &str, lock: bool) {
    let spec = fs_err::read_to_string(root().join("specs/python-base.yaml")).unwrap();
    write(dir, &format!("specs/{name}.yaml"), &spec);
    let layer = fs_err::read_to_string(root().join("specs/layers/debian-bookworm-python311.yaml")).unwrap();
    write(dir, "specs/layers/debian-bookworm-python311.yaml", &layer);
    if lock {
        let l = fs_err::read_to_string(root().join("specs/python-base.lock")).unwrap();
        write(dir, &format!("specs/{name}.lock"), &l);
    }
}

#[test]
fn spec_errors_of_the_docs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // docs/spec.md
    write(d, "spec.yaml", "version: 1\nname: x\nlayers:\n  - fils:\n      - {path: /etc/motd, content: hi}\n");
    insta::assert_snapshot!("unknown_field", failure(&run(strata_in(d).args(["build", "spec.yaml"])), d));
    // docs/security.md
    write(d, "proj/spec.yaml", "version: 1\nname: x\nlayers:\n  - files: [{path: /x, source: /etc/passwd}]\n");
    insta::assert_snapshot!("outside_context", failure(&run(strata_in(d).args(["build", "proj/spec.yaml"])), d));
}

#[test]
fn lock_errors_of_the_docs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // docs/lock.md: no lock, then a stale one.
    python_base(d, "python-base", false);
    let o = run(strata_in(d).args(["build", "specs/python-base.yaml"]));
    insta::assert_snapshot!("missing_lock", failure(&o, d));
    python_base(d, "app", true);
    // An input that chooses artifacts (an env var would not make it stale).
    let layer = d.join("specs/layers/debian-bookworm-python311.yaml");
    let text = fs_err::read_to_string(&layer).unwrap();
    let more = text.replacen("        - tzdata\n", "        - tzdata\n        - libzstd1\n", 1);
    assert_ne!(text, more);
    fs_err::write(&layer, more).unwrap();
    let o = run(strata_in(d).args(["build", "specs/app.yaml"]));
    insta::assert_snapshot!("stale_lock", failure(&o, d));
    // docs/air-gapped.md: offline, with the lock and nothing in the cache.
    python_base(d, "python-base", true);
    let o = run(strata_in(d).args(["build", "specs/python-base.yaml", "--offline", "-o", "oci:x"]));
    insta::assert_snapshot!("offline_not_cached", failure(&o, d));
}

#[test]
fn network_errors_of_the_docs() {
    // docs/air-gapped.md: a server that accepts the request and says nothing.
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let srv = Server::start([("/a.tar.gz".to_string(), Reply::Silent(std::time::Duration::from_secs(120)))].into());
    write(
        d,
        "spec.yaml",
        &format!(
            "version: 1\nname: x\nlayers:\n  - tarball: {{url: \"{}/a.tar.gz\", sha256: \"{}\"}}\n",
            srv.addr,
            "1".repeat(64)
        ),
    );
    let o = run(strata_in(d)
        .env("STRATA_NET_IDLE_TIMEOUT", "1s")
        .env("STRATA_NET_DEADLINE", "3s")
        .args(["build", "spec.yaml"]));
    let port = srv.addr.rsplit(':').next().unwrap().to_string();
    let e = failure(&o, d).replace(&port, "[PORT]");
    // The warnings before it tell each retry, and how many attempts fit in
    // the deadline depends on timing: the error from its first line.
    let e = &e[e.find("error:").unwrap()..];
    let i = e.find("(after ").unwrap() + 7;
    let e = format!("{}[N]{}", &e[..i], &e[i + e[i..].find(' ').unwrap()..]);
    insta::assert_snapshot!("silent_server", e);
}

#[test]
fn python_errors_of_the_docs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // docs/python.md: a pylock edited after `strata lock` recorded it.
    let wheel = "https://files.example.org/alpha-1.0-py3-none-any.whl";
    write(
        d,
        "specs/pylock.pytorch-cuda.toml",
        &format!(
            "lock-version = \"1.0\"\ncreated-by = \"docs\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"alpha\"\nversion = \"1.0\"\nwheels = [{{ url = \"{wheel}\", size = 100, hashes = {{ sha256 = \"{}\" }} }}]\n",
            "a".repeat(64)
        ),
    );
    write(
        d,
        "specs/pytorch-cuda.yaml",
        "version: 1\nname: pytorch-cuda\nlayers:\n  - name: base\n    files: [{path: /etc/motd, content: hi}]\n  - name: python\n    python:\n      lock: pylock.pytorch-cuda.toml\n",
    );
    let o = run(strata_in(d).args(["lock", "specs/pytorch-cuda.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let p = d.join("specs/pylock.pytorch-cuda.toml");
    let edited = fs_err::read_to_string(&p).unwrap().replace("created-by = \"docs\"", "created-by = \"someone\"");
    fs_err::write(&p, edited).unwrap();
    let o = run(strata_in(d).args(["build", "specs/pytorch-cuda.yaml"]));
    insta::assert_snapshot!("pylock_changed", failure(&o, d));

    // Without uv.
    let empty = d.join("empty-path");
    fs_err::create_dir_all(&empty).unwrap();
    write(
        d,
        "specs/app.yaml",
        "version: 1\nname: app\nlayers:\n  - python:\n      lock: pylock.toml\n      requirements: [requests]\n      exclude_newer: 2026-11-01T00:00:00Z\n",
    );
    let o = run(strata_in(d).env_remove("STRATA_UV").env("PATH", &empty).args(["lock", "specs/app.yaml"]));
    insta::assert_snapshot!("no_uv", failure(&o, d));
}
