//! The target interpreter and platform, its PEP 425 tags (with the PEP 600
//! manylinux aliases), and wheel file names.
//!
//! The tag order is the one `packaging.tags.sys_tags()` yields on the target:
//! `cp311-cp311`, `cp311-abi3`, `cp311-none`, `cp310..cp32-abi3`, then
//! `py311`, `py3`, `py310..py30` with `none`, each over the platforms from
//! the newest manylinux to the oldest; then the `any` platform. A wheel's
//! rank is the best rank of its tags, and the best-ranked wheel wins.

use std::collections::{BTreeSet, HashMap};

use super::marker::MarkerEnv;

/// The interpreter and platform wheels are chosen for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// CPython major and minor version.
    pub python: (u32, u32),
    /// Full version for `python_full_version` markers (Debian bookworm: 3.11.2).
    pub python_full: String,
    /// Newest glibc the image provides wheels may assume (`manylinux_2_28`).
    pub glibc: (u32, u32),
    /// Machine architecture as in wheel tags and `platform_machine`.
    pub arch: String,
}

impl Default for Target {
    fn default() -> Self {
        Target { python: (3, 11), python_full: "3.11.2".into(), glibc: (2, 28), arch: "x86_64".into() }
    }
}

impl Target {
    /// The target a `python:` entry names (`target:`), else the default,
    /// on the image's architecture.
    pub fn of(spec: Option<&crate::spec::PythonTargetSpec>, arch: crate::platform::Arch) -> Target {
        let d = Target { arch: arch.python_machine().to_string(), ..Target::default() };
        match spec {
            None => d,
            Some(t) => Target {
                python: (t.python.0, t.python.1),
                python_full: format!("{}.{}.{}", t.python.0, t.python.1, t.python.2),
                glibc: t.glibc.map(|g| (g.0, g.1)).unwrap_or(d.glibc),
                arch: d.arch,
            },
        }
    }
}

/// Legacy manylinux names (PEP 513, 571, 599) and the glibc they mean (PEP 600).
pub const LEGACY_MANYLINUX: [(&str, (u32, u32)); 3] =
    [("manylinux2014", (2, 17)), ("manylinux2010", (2, 12)), ("manylinux1", (2, 5))];

impl Target {
    /// `CPython 3.11 manylinux_2_28 x86_64`.
    pub fn describe(&self) -> String {
        format!("CPython {}.{} manylinux_{}_{} {}", self.python.0, self.python.1, self.glibc.0, self.glibc.1, self.arch)
    }

    /// `cp311`.
    pub fn cp(&self) -> String {
        format!("cp{}{}", self.python.0, self.python.1)
    }

    /// Platform tags, most specific first: every `manylinux_2_N` for N from
    /// the target's glibc down to 0, each legacy alias right after the
    /// `manylinux_2_N` it stands for. `linux_<arch>` is not included: such
    /// wheels were built for one particular machine.
    pub fn platforms(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.glibc.0 == 2 {
            for minor in (0..=self.glibc.1).rev() {
                v.push(format!("manylinux_2_{minor}_{}", self.arch));
                for (legacy, ver) in LEGACY_MANYLINUX {
                    if ver == (2, minor) {
                        v.push(format!("{legacy}_{}", self.arch));
                    }
                }
            }
        }
        v
    }

    /// All supported tags, best first.
    pub fn supported_tags(&self) -> Vec<(String, String, String)> {
        let plats = self.platforms();
        let cp = self.cp();
        let mut out = Vec::new();
        let mut add = |py: &str, abi: &str, plats: &[String]| {
            for p in plats {
                out.push((py.to_string(), abi.to_string(), p.clone()));
            }
        };
        add(&cp, &cp, &plats);
        add(&cp, "abi3", &plats);
        add(&cp, "none", &plats);
        for minor in (2..self.python.1).rev() {
            add(&format!("cp{}{minor}", self.python.0), "abi3", &plats);
        }
        let mut py_range = vec![format!("py{}{}", self.python.0, self.python.1), format!("py{}", self.python.0)];
        for minor in (0..self.python.1).rev() {
            py_range.push(format!("py{}{minor}", self.python.0));
        }
        for py in &py_range {
            add(py, "none", &plats);
        }
        let any = ["any".to_string()];
        add(&cp, "none", &any);
        for py in &py_range {
            add(py, "none", &any);
        }
        out
    }

    /// The rank of every supported tag (0 = best).
    pub fn tag_ranks(&self) -> HashMap<(String, String, String), usize> {
        self.supported_tags().into_iter().enumerate().map(|(i, t)| (t, i)).collect()
    }

    /// The marker environment of the target interpreter.
    pub fn marker_env(&self, extras: &BTreeSet<String>, groups: &BTreeSet<String>) -> MarkerEnv {
        let short = format!("{}.{}", self.python.0, self.python.1);
        MarkerEnv {
            os_name: "posix".into(),
            sys_platform: "linux".into(),
            platform_machine: self.arch.clone(),
            platform_python_implementation: "CPython".into(),
            platform_release: String::new(),
            platform_system: "Linux".into(),
            platform_version: String::new(),
            python_version: short,
            python_full_version: self.python_full.clone(),
            implementation_name: "cpython".into(),
            implementation_version: self.python_full.clone(),
            extras: extras.clone(),
            dependency_groups: groups.clone(),
        }
    }
}

/// The parts of a wheel file name (`{dist}-{ver}(-{build})?-{py}-{abi}-{plat}.whl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// The file name.
    pub file: String,
    /// Distribution name as written (`nvidia_cudnn_cu12`).
    pub dist: String,
    /// Version as written.
    pub version: String,
    /// Build tag, if any.
    pub build: Option<String>,
    /// Every (python, abi, platform) combination the compressed tag sets expand to.
    pub tags: Vec<(String, String, String)>,
}

/// A file name that is not a wheel's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{file}` {}", match problem {
    WheelNameProblem::NotWhl => "is not a wheel file name (it does not end in `.whl`)",
    WheelNameProblem::Shape => "is not a wheel file name of the form NAME-VERSION[-BUILD]-PY-ABI-PLATFORM.whl",
    WheelNameProblem::EmptyPart => "has an empty name, version or tag",
})]
pub struct WheelNameError {
    /// The file name.
    pub file: String,
    /// What is wrong.
    pub problem: WheelNameProblem,
}

/// What is wrong with a wheel file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WheelNameProblem {
    /// Not `.whl`.
    NotWhl,
    /// Not five or six dash-separated parts.
    Shape,
    /// A part is empty.
    EmptyPart,
}

impl WheelName {
    /// Parses a wheel file name.
    pub fn parse(file: &str) -> Result<WheelName, WheelNameError> {
        let bad = |problem| WheelNameError { file: file.to_string(), problem };
        let stem = file.strip_suffix(".whl").ok_or_else(|| bad(WheelNameProblem::NotWhl))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (dist, version, build, py, abi, plat) = match parts.as_slice() {
            [d, v, p, a, pl] => (*d, *v, None, *p, *a, *pl),
            [d, v, b, p, a, pl] if b.starts_with(|c: char| c.is_ascii_digit()) => {
                (*d, *v, Some(b.to_string()), *p, *a, *pl)
            }
            _ => return Err(bad(WheelNameProblem::Shape)),
        };
        if dist.is_empty() || version.is_empty() || [py, abi, plat].iter().any(|t| t.is_empty()) {
            return Err(bad(WheelNameProblem::EmptyPart));
        }
        let mut tags = Vec::new();
        for p in py.split('.') {
            for a in abi.split('.') {
                for pl in plat.split('.') {
                    tags.push((p.to_ascii_lowercase(), a.to_ascii_lowercase(), pl.to_ascii_lowercase()));
                }
            }
        }
        Ok(WheelName { file: file.to_string(), dist: dist.to_string(), version: version.to_string(), build, tags })
    }

    /// `py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64` style summary of the tags.
    pub fn tag_text(&self) -> String {
        let stem = self.file.trim_end_matches(".whl");
        let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
        if parts.len() == 4 {
            format!("{}-{}-{}", parts[2], parts[1], parts[0])
        } else {
            stem.to_string()
        }
    }

    /// The build tag's number and text, for ordering (`None` sorts first).
    pub fn build_key(&self) -> (u64, String) {
        match &self.build {
            None => (0, String::new()),
            Some(b) => {
                let n = b.bytes().take_while(u8::is_ascii_digit).count();
                (b[..n].parse().unwrap_or(0), b[n..].to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_include_pep_600_aliases_in_order() {
        let p = Target::default().platforms();
        assert_eq!(p[0], "manylinux_2_28_x86_64");
        let pos = |s: &str| p.iter().position(|x| x == s).unwrap();
        assert_eq!(pos("manylinux2014_x86_64"), pos("manylinux_2_17_x86_64") + 1);
        assert_eq!(pos("manylinux2010_x86_64"), pos("manylinux_2_12_x86_64") + 1);
        assert_eq!(pos("manylinux1_x86_64"), pos("manylinux_2_5_x86_64") + 1);
        assert!(!p.iter().any(|x| x.contains("2_29") || x.starts_with("linux_")));
    }

    #[test]
    fn tag_order_matches_packaging() {
        let r = Target::default().tag_ranks();
        let rank = |py: &str, abi: &str, plat: &str| r.get(&(py.into(), abi.into(), plat.into())).copied();
        let cp = rank("cp311", "cp311", "manylinux_2_28_x86_64").unwrap();
        let abi3 = rank("cp311", "abi3", "manylinux_2_28_x86_64").unwrap();
        let old_abi3 = rank("cp37", "abi3", "manylinux1_x86_64").unwrap();
        let py3 = rank("py3", "none", "manylinux_2_17_x86_64").unwrap();
        let any = rank("py3", "none", "any").unwrap();
        assert!(cp < rank("cp311", "cp311", "manylinux2014_x86_64").unwrap());
        assert!(cp < abi3 && abi3 < old_abi3 && old_abi3 < py3 && py3 < any);
        assert!(rank("cp312", "cp312", "manylinux_2_28_x86_64").is_none());
        assert!(rank("cp311", "cp311", "manylinux_2_31_x86_64").is_none());
        assert!(rank("cp311", "cp311", "musllinux_1_2_x86_64").is_none());
        assert!(rank("cp311", "cp311", "manylinux_2_28_aarch64").is_none());
    }

    #[test]
    fn wheel_names_expand_compressed_tags() {
        let w = WheelName::parse("nvidia_nccl_cu12-2.27.5-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
            .unwrap();
        assert_eq!(w.dist, "nvidia_nccl_cu12");
        assert_eq!(w.tags.len(), 2);
        assert_eq!(w.tag_text(), "py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64");
        let w = WheelName::parse("six-1.16.0-1-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.build.as_deref(), Some("1"));
        assert_eq!(w.tags.len(), 2);
        assert!(WheelName::parse("six-1.16.0.tar.gz").is_err());
        assert!(WheelName::parse("six-py3-none-any.whl").is_err());
    }
}
