//! Deterministic, seeded fuzzing of the readers that take hostile bytes: the
//! spec loader, the tar reader and the wheel (zip) reader. Each starts from
//! the committed corpus in tests/fuzz-corpus/, mutates it (bit flips, byte
//! edits, chunk copies and cuts, splices of tokens the format cares about)
//! and asserts that every input ends in a result or an error: no panic, and
//! no input takes more than a bounded time.
//!
//! It runs for about a second per reader in the normal test suite. For a
//! longer run (docs/security.md):
//!
//! ```sh
//! STRATA_FUZZ_SECS=600 STRATA_FUZZ_SEED=7 cargo test --release --test it fuzz:: -- --nocapture
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small xorshift generator: the same seed gives the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(kind);
    let mut v: Vec<(PathBuf, Vec<u8>)> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = fs_err::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{} is empty", dir.display());
    v.into_iter().map(|(_, b)| b).collect()
}

/// One mutation of `input`; `tokens` are spliced in now and then.
fn mutate(rng: &mut Rng, input: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                out.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16.min(len - i));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                // Copy a chunk elsewhere (repeats structures).
                let i = rng.below(len);
                let n = 1 + rng.below(512.min(len - i));
                let chunk = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
            5 if len > 0 => out.truncate(rng.below(len)),
            6 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, t.iter().copied());
            }
            _ if len >= 4 => {
                // An interesting number over four bytes.
                let i = rng.below(len - 3);
                let v: u32 = [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff][rng.below(7)];
                out[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    out
}

fn budget() -> Duration {
    let secs: f64 = std::env::var("STRATA_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("STRATA_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_1234_abcd_0001)
}

/// Runs `one` on mutated inputs until the time budget is spent. Every input
/// must finish without a panic and within `per_case`.
fn fuzz(name: &str, kind: &str, tokens: &[&[u8]], per_case: Duration, mut one: impl FnMut(&[u8])) {
    let seeds = corpus(kind);
    let mut rng = Rng(seed() ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let started = Instant::now();
    let mut cases = 0u64;
    // The corpus itself first, then mutations (of the corpus, or of earlier mutants).
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    let mut i = 0usize;
    while i < seeds.len() || started.elapsed() < budget() {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else {
            let base = &pool[rng.below(pool.len())];
            mutate(&mut rng, base, tokens)
        };
        i += 1;
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| one(&input)));
        let took = t0.elapsed();
        if r.is_err() {
            let path = std::env::temp_dir().join(format!("strata-fuzz-{name}-crash"));
            fs_err::write(&path, &input).unwrap();
            panic!("{name}: case {cases} panicked; input saved to {}", path.display());
        }
        assert!(took < per_case, "{name}: case {cases} took {took:?} (input {} bytes)", input.len());
        cases += 1;
        if pool.len() < 256 && rng.below(8) == 0 {
            pool.push(input);
        }
    }
    eprintln!("{name}: {cases} cases in {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn fuzz_spec_loader() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let layer = fs_err::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/spec/layer.yaml")).unwrap();
    fs_err::write(dir.join("layer.yaml"), &layer).unwrap();
    let tokens: &[&[u8]] = &[
        b"[",
        b"{",
        b"]",
        b"}",
        b"\n  - ",
        b": ",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"- include: layer.yaml\n",
        b"- include: spec.yaml\n",
        b"\"",
        b"'",
        b"\\u0000",
        b"---\n",
        b"? ",
        b"|\n",
        b"~",
        b"..",
        b"/proc/self/environ",
        b"\xff",
        b"\t",
        b"layers:",
        b"name: ",
        b"epoch: 99999999999999",
        b"mode: \"7777\"",
    ];
    let mut rng = Rng(seed());
    fuzz("spec", "spec", tokens, Duration::from_secs(5), |input| {
        // Now and then the included file is mutated too.
        if rng.below(4) == 0 {
            fs_err::write(dir.join("layer.yaml"), mutate(&mut rng, &layer, tokens)).unwrap();
        }
        let spec = dir.join("spec.yaml");
        fs_err::write(&spec, input).unwrap();
        let _ = strata::spec::load(&spec).map(|s| s.layers.len());
    });
}

#[test]
fn fuzz_tar_reader() {
    let t = tempfile::tempdir().unwrap();
    let scratch = t.path().to_path_buf();
    let origin: Arc<str> = Arc::from("fuzz");
    let tokens: &[&[u8]] =
        &[b"../", b"/", b"ustar\x0000", b"ustar  \x00", b"././@LongLink", b"\x00\x00\x00\x00", b"0000777"];
    let mut rng = Rng(seed() ^ 3);
    fuzz("tar", "tar", tokens, Duration::from_secs(5), |input| {
        let placement = strata::archive::Placement {
            into: if rng.below(2) == 0 { None } else { strata::tree::TreePath::from_image_path("/opt/x").ok() },
            strip_components: rng.below(3) as u32,
            owner: None,
        };
        let mut tree = strata::tree::Tree::new();
        let Ok(stream) = strata::archive::decompress(input, "fuzz.tar") else { return };
        let data = strata::archive::MemberData::Spool(&scratch);
        if strata::archive::read_tar(stream, "fuzz.tar", &placement, &origin, data, &mut tree).is_ok() {
            // Everything the tree holds can be read back.
            for (_, e) in tree.iter() {
                if let strata::tree::Kind::File { content, size, .. } = &e.kind {
                    let mut n = 0u64;
                    if let Ok(mut rd) = content.open() {
                        n = std::io::copy(&mut rd, &mut std::io::sink()).unwrap_or(0);
                    }
                    assert!(n <= *size);
                }
            }
        }
    });
}

#[test]
fn fuzz_wheel_reader() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("demo-1.0-py3-none-any.whl");
    let tokens: &[&[u8]] = &[
        b"PK\x01\x02",
        b"PK\x03\x04",
        b"PK\x05\x06",
        b"PK\x06\x06",
        b"PK\x06\x07",
        b"../",
        b"/",
        b",sha256=",
        b"\xff\xff\xff\xff",
    ];
    let scheme = strata::sources::python::Scheme::debian((3, 11));
    fuzz("wheel", "wheel", tokens, Duration::from_secs(5), |input| {
        fs_err::write(&path, input).unwrap();
        let Ok(zip) = strata::sources::python::zip::ZipArchive::open(&path, "demo-1.0-py3-none-any.whl") else {
            return;
        };
        let Ok(installed) = strata::sources::python::install::install(&zip, "demo", "1.0", &scheme, Default::default())
        else {
            return;
        };
        for (_, e) in &installed.entries {
            if let strata::tree::Kind::File { content, .. } = &e.kind {
                if let Ok(mut rd) = content.open() {
                    let _ = std::io::copy(&mut rd, &mut std::io::sink());
                }
            }
        }
    });
}
