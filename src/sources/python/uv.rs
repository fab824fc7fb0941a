//! Writing a `pylock.toml` from a `requirements:` list with uv:
//! `uv pip compile --python-platform x86_64-manylinux_2_28 --python-version 3.11
//! --format pylock.toml --exclude-newer <time>`. uv resolves for the image's
//! interpreter and platform, not the host's, and `--exclude-newer` makes the
//! resolution repeatable. uv is found as `$STRATA_UV` or `uv` on `PATH`.
//!
//! A relock hands uv the current pylock as its output file: uv keeps the
//! versions it pins wherever they still satisfy the requirements (its
//! preferences), so only what the edit needs moves; `--upgrade-package`
//! moves named packages. Offline, uv runs with `--offline` and a
//! `--find-links` directory of the wheels strata can offer.

use std::path::Path;
use std::process::Command;

use super::tags::Target;
use crate::spec::PythonSpec;

/// Why a lock could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
pub struct UvError {
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// What a relock asks of uv beyond the spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Preferences<'a> {
    /// The current pylock's bytes: uv starts from its versions.
    pub existing: Option<&'a [u8]>,
    /// Packages uv may move to their newest allowed version.
    pub upgrade_packages: &'a [String],
    /// Offline: no network; choose from these wheels (and uv's cache).
    pub find_links: Option<&'a Path>,
}

/// The uv command line for `spec` (without the program name).
pub fn compile_args(
    spec: &PythonSpec,
    target: &Target,
    requirements_file: &Path,
    output: &Path,
    compile_command: &str,
    prefs: &Preferences<'_>,
) -> Result<Vec<String>, UvError> {
    let exclude = spec.exclude_newer.as_deref().ok_or_else(|| UvError {
        message: "`python.exclude_newer` is not set; without it the same requirements resolve differently tomorrow"
            .into(),
        hint: Some(
            "add e.g. `exclude_newer: 2026-11-01T00:00:00Z` to the `python:` entry (uv resolves as of that time)"
                .into(),
        ),
    })?;
    let mut args: Vec<String> = vec![
        "pip".into(),
        "compile".into(),
        requirements_file.display().to_string(),
        "--python-platform".into(),
        format!("{}-manylinux_{}_{}", target.arch, target.glibc.0, target.glibc.1),
        "--python-version".into(),
        format!("{}.{}", target.python.0, target.python.1),
        "--format".into(),
        "pylock.toml".into(),
        "--exclude-newer".into(),
        exclude.to_string(),
        "--no-config".into(),
        // Wheels only (uv's `--only-binary :all:`): never build a source
        // distribution, which would run its build backend, arbitrary code.
        "--no-build".into(),
        "--quiet".into(),
        "--custom-compile-command".into(),
        compile_command.to_string(),
        "--output-file".into(),
        output.display().to_string(),
    ];
    if let Some(i) = &spec.index_url {
        args.push("--index-url".into());
        args.push(i.clone());
    }
    for p in prefs.upgrade_packages {
        args.push("--upgrade-package".into());
        args.push(p.clone());
    }
    if let Some(dir) = prefs.find_links {
        args.push("--offline".into());
        args.push("--find-links".into());
        args.push(dir.display().to_string());
    }
    Ok(args)
}

/// Runs uv for `spec` (whose lock goes to `lock_path`) and returns the lock
/// text it wrote. Nothing is written at `lock_path`; the caller checks the
/// text and decides (see `lockfile`).
pub fn compile(
    spec: &PythonSpec,
    lock_path: &Path,
    target: &Target,
    compile_command: &str,
    prefs: &Preferences<'_>,
) -> Result<String, UvError> {
    // Checked again here (not only when the spec was loaded): nothing but a
    // name requirement may reach uv.
    for r in &spec.requirements {
        super::requirement::parse(r).map_err(|e| UvError {
            message: format!("requirement {}: {}", crate::report::printable(r), e.message),
            hint: Some(e.hint),
        })?;
    }
    if let Some(i) = &spec.index_url {
        if !(i.starts_with("https://") || i.starts_with("http://")) {
            return Err(UvError {
                message: format!("`{}` is not an http(s) index URL", crate::net::redact::url(i)),
                hint: None,
            });
        }
    }
    if spec.requirements.is_empty() {
        return Err(UvError {
            message: format!("`python:` with lock {} has no `requirements:` to resolve", spec.lock),
            hint: Some("list the top-level packages (e.g. `requirements: [torch==2.9.0, numpy]`), or bring your own lock (see docs/python.md)".into()),
        });
    }
    let io = |what: &str, e: std::io::Error| UvError {
        message: format!("{what}: {}", crate::error::os_message(&e)),
        hint: None,
    };
    let tmp = tempfile::Builder::new()
        .prefix("strata-lock-")
        .tempdir()
        .map_err(|e| io("creating a temporary directory", e))?;
    let req = tmp.path().join("requirements.in");
    let mut text = spec.requirements.join("\n");
    text.push('\n');
    fs_err::write(&req, text).map_err(|e| io("writing requirements", e))?;
    let out = tmp.path().join(lock_path.file_name().unwrap_or("pylock.toml".as_ref()));
    if let Some(existing) = prefs.existing {
        fs_err::write(&out, existing).map_err(|e| io("writing the current pylock for uv", e))?;
    }
    let args = compile_args(spec, target, &req, &out, compile_command, prefs)?;
    let uv = std::env::var_os("STRATA_UV").unwrap_or_else(|| "uv".into());
    let output = Command::new(&uv).args(&args).current_dir(tmp.path()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            UvError {
                message: format!("`{}` was not found", Path::new(&uv).display()),
                hint: Some("install uv (`pip install uv`) or set STRATA_UV to its path; or write the lock yourself with any PEP 751 tool and point `python.lock` at it (docs/python.md)".into()),
            }
        } else {
            io(&format!("running {}", Path::new(&uv).display()), e)
        }
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if prefs.find_links.is_some() {
            "offline, uv can choose only from the wheels of the mirrors (`--mirror DIR`), of the current pylock and of its own cache: lock online, or bring a mirror that has the missing package (`strata fetch SPEC --into DIR` on a connected machine, for a spec that lists it)".to_string()
        } else {
            format!(
                "check the requirements; uv resolves for the image ({}), so a package needs a wheel for it",
                target.describe()
            )
        };
        if let Some(name) = no_wheel_for(&stderr) {
            return Err(UvError {
                message: format!(
                    "package `{name}` has no wheel for {} (strata never builds source distributions)\nuv pip compile failed ({}):\n{}",
                    target.describe(),
                    output.status,
                    stderr.trim_end()
                ),
                hint: Some(format!(
                    "every package needs a wheel for the image's platform: require a version of `{name}` that has one (uv's hint above lists the platforms it has wheels for), bring an index that has one (`index_url:`), or build the image for the platforms it has"
                )),
            });
        }
        return Err(UvError {
            message: format!("uv pip compile failed ({}):\n{}", output.status, stderr.trim_end()),
            hint: Some(hint),
        });
    }
    fs_err::read_to_string(&out).map_err(|e| io("reading the lock uv wrote", e))
}

/// The package uv could not resolve because none of its wheels fits the
/// target, from uv's explanation (`Because fast==1.0 has no wheels with a
/// matching platform tag …`, `… all versions of fast have no wheels …`).
fn no_wheel_for(stderr: &str) -> Option<String> {
    let at = stderr
        .find(" has no wheels with a matching platform tag")
        .or_else(|| stderr.find(" have no wheels with a matching platform tag"))?;
    let token = stderr[..at].split_whitespace().last()?;
    let name: String =
        token.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_without_a_fitting_wheel_is_named() {
        let uv = "error: No solution found when resolving dependencies\n  cause: Because xonly==1.0 has no wheels with a matching platform tag (e.g., `manylinux_2_28_aarch64`) and only xonly==1.0 is available, we can conclude that all versions of xonly cannot be used.";
        assert_eq!(no_wheel_for(uv).as_deref(), Some("xonly"));
        let uv = "  cause: Because all versions of fast-lib have no wheels with a matching platform tag (e.g., `x`)";
        assert_eq!(no_wheel_for(uv).as_deref(), Some("fast-lib"));
        assert_eq!(no_wheel_for("Because delta was not found in the cache"), None);
    }

    #[test]
    fn command_line_targets_the_image_and_pins_time() {
        let spec = PythonSpec {
            lock: "pylock.toml".into(),
            requirements: vec!["torch==2.9.0".into()],
            exclude_newer: Some("2026-11-01T00:00:00Z".into()),
            index_url: None,
            extras: vec![],
            split: None,
            target: None,
        };
        let none = Preferences::default();
        let a = compile_args(
            &spec,
            &Target::default(),
            Path::new("r.in"),
            Path::new("out.toml"),
            "strata lock s.yaml",
            &none,
        )
        .unwrap()
        .join(" ");
        assert_eq!(
            a,
            "pip compile r.in --python-platform x86_64-manylinux_2_28 --python-version 3.11 --format pylock.toml --exclude-newer 2026-11-01T00:00:00Z --no-config --no-build --quiet --custom-compile-command strata lock s.yaml --output-file out.toml"
        );
        // A spec's target reaches uv.
        let t = crate::spec::PythonTargetSpec {
            python: crate::spec::CPythonVersion(3, 13, 5),
            glibc: Some(crate::spec::GlibcVersion(2, 41)),
        };
        let a = compile_args(
            &spec,
            &Target::of(Some(&t), crate::platform::Arch::Amd64),
            Path::new("r"),
            Path::new("o"),
            "x",
            &none,
        )
        .unwrap()
        .join(" ");
        assert!(a.contains("--python-platform x86_64-manylinux_2_41 --python-version 3.13 "), "{a}");
        let ups = ["numpy".to_string()];
        let links = Path::new("/links");
        let prefs = Preferences { existing: None, upgrade_packages: &ups, find_links: Some(links) };
        let a = compile_args(&spec, &Target::default(), Path::new("r"), Path::new("o"), "x", &prefs).unwrap().join(" ");
        assert!(a.ends_with(" --upgrade-package numpy --offline --find-links /links"), "{a}");
        let no_time = PythonSpec { exclude_newer: None, ..spec };
        assert!(compile_args(&no_time, &Target::default(), Path::new("r"), Path::new("o"), "x", &none)
            .unwrap_err()
            .to_string()
            .contains("exclude_newer"));
    }
}
