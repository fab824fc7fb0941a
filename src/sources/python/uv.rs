//! Writing a `pylock.toml` from a `requirements:` list with uv:
//! `uv pip compile --python-platform x86_64-manylinux_2_28 --python-version 3.11
//! --format pylock.toml --exclude-newer <time>`. uv resolves for the image's
//! interpreter and platform, not the host's, and `--exclude-newer` makes the
//! resolution repeatable. uv is found as `$STRATA_UV` or `uv` on `PATH`.

use std::path::Path;
use std::process::Command;

use super::pylock::{self, Selection};
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

/// The uv command line for `spec` (without the program name).
pub fn compile_args(
    spec: &PythonSpec,
    target: &Target,
    requirements_file: &Path,
    output: &Path,
    compile_command: &str,
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
    Ok(args)
}

/// Runs uv for `spec` (whose lock goes to `lock_path`) and returns the lock
/// text it wrote and that lock's selection for the target. Nothing is
/// written at `lock_path`; the caller decides (see `lockfile`).
pub fn compile(
    spec: &PythonSpec,
    lock_path: &Path,
    target: &Target,
    compile_command: &str,
) -> Result<(String, Selection), UvError> {
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
    let args = compile_args(spec, target, &req, &out, compile_command)?;
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
        return Err(UvError {
            message: format!("uv pip compile failed ({}):\n{}", output.status, stderr.trim_end()),
            hint: Some("check the requirements; uv resolves for the image (CPython 3.11, manylinux_2_28 x86_64), so a package needs a wheel for it".into()),
        });
    }
    let text = fs_err::read_to_string(&out).map_err(|e| io("reading the lock uv wrote", e))?;
    let sel = pylock::select(lock_path, &text, target, &spec.extras.iter().cloned().collect())
        .map_err(|e| UvError { message: format!("uv wrote a lock strata cannot use: {e}"), hint: None })?;
    Ok((text, sel))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let a = compile_args(&spec, &Target::default(), Path::new("r.in"), Path::new("out.toml"), "strata lock s.yaml")
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
        let a = compile_args(&spec, &Target::of(Some(&t)), Path::new("r"), Path::new("o"), "x").unwrap().join(" ");
        assert!(a.contains("--python-platform x86_64-manylinux_2_41 --python-version 3.13 "), "{a}");
        let no_time = PythonSpec { exclude_newer: None, ..spec };
        assert!(compile_args(&no_time, &Target::default(), Path::new("r"), Path::new("o"), "x")
            .unwrap_err()
            .to_string()
            .contains("exclude_newer"));
    }
}
