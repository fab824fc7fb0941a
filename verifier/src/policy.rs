//! What to check and how strictly: the command line and the environment
//! turned into [`Options`]. Flags override the environment.

use crate::compat::CudaVersion;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// About a second: correctness of every layer, no throughput figures.
    Quick,
    /// Quick plus throughput and bandwidth against datasheet peaks.
    Full,
}

impl Level {
    /// The word used in flags, env and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Quick => "quick",
            Level::Full => "full",
        }
    }
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exit non-zero with the cause and the fix; the command does not run.
    Strict,
    /// Report and run the command anyway.
    Warn,
    /// Check nothing; run the command at once.
    Off,
}

impl Mode {
    /// The word used in flags, env and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// Level and mode together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How much to check.
    pub level: Level,
    /// What a failure does.
    pub mode: Mode,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            level: Level::Quick,
            mode: Mode::Strict,
        }
    }
}

/// A value of `STRATA_VERIFY` / `--policy` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A word that is not quick, full, warn, strict or off.
    #[error("{origin}=`{value}`: unknown word `{word}`; expected quick, full, warn, strict or off (comma-separated, e.g. `full,warn`)")]
    UnknownWord {
        /// Where the value came from.
        origin: String,
        /// The whole value.
        value: String,
        /// The unknown word.
        word: String,
    },
    /// Two words that contradict each other.
    #[error("{origin}=`{value}` asks for both `{first}` and `{second}`; keep one")]
    Conflict {
        /// Where the value came from.
        origin: String,
        /// The whole value.
        value: String,
        /// First contradicting word.
        first: String,
        /// Second contradicting word.
        second: String,
    },
}

/// Parses a policy such as `quick`, `full`, `warn` (quick, non-blocking),
/// `full,warn` or `off`. The empty string means the default (quick, strict).
pub fn parse_policy(value: &str, origin: &str) -> Result<Policy, PolicyError> {
    let mut level: Option<&str> = None;
    let mut mode: Option<&str> = None;
    let mut policy = Policy::default();
    for raw in value.split(',') {
        let word = raw.trim();
        if word.is_empty() {
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let (slot, w) = match lower.as_str() {
            "quick" | "full" => (&mut level, word),
            "warn" | "strict" | "off" => (&mut mode, word),
            _ => {
                return Err(PolicyError::UnknownWord {
                    origin: origin.into(),
                    value: value.into(),
                    word: word.into(),
                })
            }
        };
        if let Some(prev) = *slot {
            if !prev.eq_ignore_ascii_case(w) {
                return Err(PolicyError::Conflict {
                    origin: origin.into(),
                    value: value.into(),
                    first: prev.into(),
                    second: w.into(),
                });
            }
        }
        *slot = Some(w);
        match lower.as_str() {
            "quick" => policy.level = Level::Quick,
            "full" => policy.level = Level::Full,
            "warn" => policy.mode = Mode::Warn,
            "strict" => policy.mode = Mode::Strict,
            _ => policy.mode = Mode::Off,
        }
    }
    Ok(policy)
}

/// One entry of the allowed compute-capability set (`sm_80`, `sm_90a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sm {
    /// Major compute capability.
    pub major: u32,
    /// Minor compute capability.
    pub minor: u32,
    /// `sm_90a`: architecture-specific code that runs only on exactly 9.0.
    pub arch_specific: bool,
}

impl std::fmt::Display for Sm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sm_{}{}{}",
            self.major,
            self.minor,
            if self.arch_specific { "a" } else { "" }
        )
    }
}

/// How a GPU's compute capability relates to the allowed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmMatch {
    /// Listed exactly.
    Exact,
    /// Not listed, but the same major with a higher minor than a listed
    /// non-`a` entry: its binaries run there (e.g. sm_80 code on 8.6).
    Compatible(Sm),
    /// Neither.
    No,
}

/// Compares a compute capability with the allowed set.
pub fn match_sm(allowed: &[Sm], major: u32, minor: u32) -> SmMatch {
    if allowed.iter().any(|s| s.major == major && s.minor == minor) {
        return SmMatch::Exact;
    }
    match allowed
        .iter()
        .filter(|s| !s.arch_specific && s.major == major && s.minor < minor)
        .max_by_key(|s| s.minor)
    {
        Some(s) => SmMatch::Compatible(*s),
        None => SmMatch::No,
    }
}

/// An allowed-SM list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}=`{value}`: `{entry}` is not a compute capability; expected entries like sm_80, sm_90a, 80 or 9.0, comma-separated")]
pub struct SmError {
    /// Where the value came from.
    pub origin: String,
    /// The whole value.
    pub value: String,
    /// The offending entry.
    pub entry: String,
}

/// Parses `sm_80,sm_90` (also `sm_90a`, `compute_80`, `80`, `9.0`).
pub fn parse_allowed_sm(value: &str, origin: &str) -> Result<Vec<Sm>, SmError> {
    let mut out = Vec::new();
    for raw in value.split([',', ' ', ';']) {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        let err = || SmError {
            origin: origin.into(),
            value: value.into(),
            entry: entry.into(),
        };
        let lower = entry.to_ascii_lowercase();
        let body = lower
            .strip_prefix("sm_")
            .or_else(|| lower.strip_prefix("compute_"))
            .unwrap_or(&lower);
        let (body, arch_specific) = match body.strip_suffix('a') {
            Some(b) => (b, true),
            None => (body, false),
        };
        let (major, minor) = if let Some((ma, mi)) = body.split_once('.') {
            (
                ma.parse::<u32>().map_err(|_| err())?,
                mi.parse::<u32>().map_err(|_| err())?,
            )
        } else {
            if body.len() < 2 || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let (ma, mi) = body.split_at(body.len() - 1);
            (
                ma.parse::<u32>().map_err(|_| err())?,
                mi.parse::<u32>().map_err(|_| err())?,
            )
        };
        if major == 0 || minor > 9 {
            return Err(err());
        }
        let sm = Sm {
            major,
            minor,
            arch_specific,
        };
        if !out.contains(&sm) {
            out.push(sm);
        }
    }
    if out.is_empty() {
        return Err(SmError {
            origin: origin.into(),
            value: value.into(),
            entry: String::new(),
        });
    }
    Ok(out)
}

/// The default allowed set when the image declares none: A100 and H100/H200.
pub fn default_allowed_sm() -> Vec<Sm> {
    vec![
        Sm {
            major: 8,
            minor: 0,
            arch_specific: false,
        },
        Sm {
            major: 9,
            minor: 0,
            arch_specific: false,
        },
    ]
}

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Verify, then run the command if there is one.
    Run,
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// `strata-verify metrics`: serve GPU metrics for Prometheus on this
    /// address (`HOST:PORT`).
    Metrics {
        /// Where to listen.
        listen: String,
    },
}

/// Everything the run needs, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to do.
    pub action: Action,
    /// Level and mode.
    pub policy: Policy,
    /// Where the policy came from (`default`, `STRATA_VERIFY`, `flags`).
    pub policy_origin: String,
    /// Print the JSON report on stdout instead of the text report on stderr.
    pub json_stdout: bool,
    /// Also write the JSON report to this file.
    pub json_file: Option<PathBuf>,
    /// CUDA version the image was built for.
    pub cuda: Option<CudaVersion>,
    /// Allowed compute capabilities, and whether they were declared.
    pub allowed_sm: Vec<Sm>,
    /// True when the allowed set came from the image or a flag.
    pub allowed_sm_declared: bool,
    /// `NVIDIA_REQUIRE_*` variables, sorted by name.
    pub requirements: Vec<(String, String)>,
    /// `NVIDIA_DISABLE_REQUIRE` is set to a true value.
    pub disable_require: bool,
    /// Extra directories searched first for the image's CUDA libraries.
    pub lib_dirs: Vec<PathBuf>,
    /// The command to run afterwards (may be empty).
    pub command: Vec<OsString>,
}

/// Bad flags or environment values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A flag this program does not have.
    #[error("unknown option `{0}`; see strata-verify --help")]
    UnknownFlag(String),
    /// A flag that needs a value got none.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// An argument before `--`.
    #[error("unexpected argument `{0}`: put the command to run after `--`, e.g. strata-verify -- python train.py")]
    StrayArgument(String),
    /// A value that is not valid UTF-8.
    #[error("the value of `{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// Bad policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Bad SM list.
    #[error(transparent)]
    Sm(#[from] SmError),
    /// Bad CUDA version.
    #[error("{origin}=`{value}` is not a CUDA version; expected MAJOR.MINOR such as 12.8")]
    Cuda {
        /// Where the value came from.
        origin: String,
        /// The value.
        value: String,
    },
    /// `--level` with something other than quick/full.
    #[error("--level `{0}`: expected quick or full")]
    Level(String),
}

fn truthy(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off"
    )
}

/// `metrics [--listen ADDR]` (the arguments after `metrics`).
fn parse_metrics(args: &[OsString]) -> Result<Action, UsageError> {
    let mut listen = crate::metrics::DEFAULT_LISTEN.to_string();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i]
            .to_str()
            .ok_or_else(|| UsageError::NotUtf8("metrics".into()))?;
        match arg.split_once('=') {
            Some(("--listen", v)) => listen = v.to_string(),
            _ => match arg {
                "--listen" => {
                    i += 1;
                    listen = args
                        .get(i)
                        .ok_or_else(|| UsageError::MissingValue("--listen".into()))?
                        .to_str()
                        .ok_or_else(|| UsageError::NotUtf8("--listen".into()))?
                        .to_string();
                }
                "-h" | "--help" => return Ok(Action::Help),
                f if f.starts_with('-') => return Err(UsageError::UnknownFlag(f.into())),
                other => return Err(UsageError::StrayArgument(other.into())),
            },
        }
        i += 1;
    }
    if listen.trim().is_empty() {
        return Err(UsageError::MissingValue("--listen".into()));
    }
    Ok(Action::Metrics { listen })
}

/// Reads flags (`args` without the program name) and the environment.
pub fn parse(args: &[OsString], env: &BTreeMap<String, String>) -> Result<Options, UsageError> {
    let mut policy = Policy::default();
    let mut policy_origin = "default".to_string();
    if let Some(v) = env.get("STRATA_VERIFY") {
        if !v.trim().is_empty() {
            policy = parse_policy(v, "STRATA_VERIFY")?;
            policy_origin = "STRATA_VERIFY".into();
        }
    }
    let mut json_file = env
        .get("STRATA_VERIFY_JSON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut cuda_text = env
        .get("STRATA_CUDA_VERSION")
        .filter(|v| !v.trim().is_empty())
        .map(|v| ("STRATA_CUDA_VERSION".to_string(), v.clone()));
    let mut sm_text = env
        .get("STRATA_ALLOWED_SM")
        .filter(|v| !v.trim().is_empty())
        .map(|v| ("STRATA_ALLOWED_SM".to_string(), v.clone()));
    let mut lib_dirs: Vec<PathBuf> = env
        .get("STRATA_VERIFY_LIB_PATH")
        .map(|v| {
            v.split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();

    let mut action = Action::Run;
    let mut json_stdout = false;
    let mut command = Vec::new();
    let mut i = 0;
    // `strata-verify metrics ...` is a subcommand; `strata-verify -- metrics`
    // runs a program called metrics.
    if args.first().map(|a| a == "metrics").unwrap_or(false) {
        action = parse_metrics(&args[1..])?;
        i = args.len();
    }
    let text = |i: usize, name: &str| -> Result<String, UsageError> {
        args.get(i)
            .ok_or_else(|| UsageError::MissingValue(name.into()))?
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| UsageError::NotUtf8(name.into()))
    };
    while i < args.len() {
        let arg = args[i]
            .to_str()
            .ok_or_else(|| UsageError::StrayArgument(args[i].to_string_lossy().into()))?;
        if arg == "--" {
            command = args[i + 1..].to_vec();
            break;
        }
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        let value = |i: &mut usize| -> Result<String, UsageError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            *i += 1;
            text(*i, flag)
        };
        match flag {
            "-h" | "--help" => action = Action::Help,
            "-V" | "--version" => action = Action::Version,
            "--json" => json_stdout = true,
            "--json-file" => json_file = Some(PathBuf::from(value(&mut i)?)),
            "--policy" => {
                policy = parse_policy(&value(&mut i)?, "--policy")?;
                policy_origin = "flags".into();
            }
            "--level" => {
                let v = value(&mut i)?;
                policy.level = match v.to_ascii_lowercase().as_str() {
                    "quick" => Level::Quick,
                    "full" => Level::Full,
                    _ => return Err(UsageError::Level(v)),
                };
                policy_origin = "flags".into();
            }
            "--warn" => {
                policy.mode = Mode::Warn;
                policy_origin = "flags".into();
            }
            "--strict" => {
                policy.mode = Mode::Strict;
                policy_origin = "flags".into();
            }
            "--off" => {
                policy.mode = Mode::Off;
                policy_origin = "flags".into();
            }
            "--cuda" => cuda_text = Some(("--cuda".into(), value(&mut i)?)),
            "--allowed-sm" => sm_text = Some(("--allowed-sm".into(), value(&mut i)?)),
            "--lib-dir" => lib_dirs.insert(0, PathBuf::from(value(&mut i)?)),
            f if f.starts_with('-') => return Err(UsageError::UnknownFlag(f.into())),
            other => return Err(UsageError::StrayArgument(other.into())),
        }
        i += 1;
    }

    let cuda = match cuda_text {
        Some((origin, value)) => {
            Some(CudaVersion::parse(&value).map_err(|_| UsageError::Cuda {
                origin: origin.clone(),
                value: value.clone(),
            })?)
        }
        None => None,
    };
    let (allowed_sm, allowed_sm_declared) = match sm_text {
        Some((origin, value)) => (parse_allowed_sm(&value, &origin)?, true),
        None => (default_allowed_sm(), false),
    };
    let requirements: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("NVIDIA_REQUIRE_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let disable_require = env
        .get("NVIDIA_DISABLE_REQUIRE")
        .map(|v| truthy(v))
        .unwrap_or(false);

    Ok(Options {
        action,
        policy,
        policy_origin,
        json_stdout,
        json_file,
        cuda,
        allowed_sm,
        allowed_sm_declared,
        requirements,
        disable_require,
        lib_dirs,
        command,
    })
}

/// The `--help` text.
pub const USAGE: &str = "\
strata-verify: check the GPU stack of this container, then run COMMAND

usage: strata-verify [OPTIONS] [-- COMMAND [ARGS...]]
       strata-verify metrics [--listen ADDR]

options (each overrides the environment variable named after it):
  --policy P          quick | full | warn | off, or a comma list such as full,warn   [STRATA_VERIFY]
  --level L           quick (about a second) or full (adds throughput checks)
  --warn              report failures but run COMMAND anyway
  --strict            stop with exit status 1 on a failure (the default)
  --off               check nothing, run COMMAND at once
  --json              print the JSON report on stdout instead of the text on stderr
  --json-file PATH    also write the JSON report to PATH                        [STRATA_VERIFY_JSON]
  --cuda X.Y          CUDA version the image was built for                      [STRATA_CUDA_VERSION]
  --allowed-sm LIST   allowed compute capabilities, e.g. sm_80,sm_90            [STRATA_ALLOWED_SM]
  --lib-dir DIR       look for cuBLAS/cuDNN/NCCL in DIR first (repeatable)      [STRATA_VERIFY_LIB_PATH]
  -V, --version       print the version
  -h, --help          print this help

metrics: serve per-GPU temperature, power, memory and utilisation (NVML)
  for Prometheus at http://ADDR/metrics; ADDR defaults to 0.0.0.0:9400.
  Without a GPU it still answers, with strata_gpu_up 0.

exit status: the command's own when it runs (this process becomes it);
  0 verified and no command; 1 a check failed (strict); 2 usage error;
  126 the command cannot be executed; 127 the command was not found.
documentation: docs/verifier.md in the Strata repository.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn policy_words() {
        assert_eq!(parse_policy("", "X").unwrap(), Policy::default());
        assert_eq!(
            parse_policy("quick", "X").unwrap(),
            Policy {
                level: Level::Quick,
                mode: Mode::Strict
            }
        );
        assert_eq!(
            parse_policy("FULL", "X").unwrap(),
            Policy {
                level: Level::Full,
                mode: Mode::Strict
            }
        );
        assert_eq!(
            parse_policy("warn", "X").unwrap(),
            Policy {
                level: Level::Quick,
                mode: Mode::Warn
            }
        );
        assert_eq!(
            parse_policy(" full , warn ", "X").unwrap(),
            Policy {
                level: Level::Full,
                mode: Mode::Warn
            }
        );
        assert_eq!(parse_policy("off", "X").unwrap().mode, Mode::Off);
        assert_eq!(
            parse_policy("quick,quick", "X").unwrap().level,
            Level::Quick
        );
    }

    #[test]
    fn policy_errors_name_the_variable_and_the_word() {
        let e = parse_policy("quik", "STRATA_VERIFY").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("STRATA_VERIFY=`quik`") && msg.contains("unknown word `quik`"),
            "{msg}"
        );
        let e = parse_policy("quick,full", "STRATA_VERIFY").unwrap_err();
        assert!(matches!(e, PolicyError::Conflict { .. }), "{e}");
        assert!(parse_policy("warn,off", "X").is_err());
        assert!(parse_policy("warn,strict", "X").is_err());
    }

    #[test]
    fn flags_override_environment() {
        let e = env(&[
            ("STRATA_VERIFY", "full,warn"),
            ("STRATA_CUDA_VERSION", "12.8"),
        ]);
        let o = parse(&args(&[]), &e).unwrap();
        assert_eq!(
            o.policy,
            Policy {
                level: Level::Full,
                mode: Mode::Warn
            }
        );
        assert_eq!(o.policy_origin, "STRATA_VERIFY");
        assert_eq!(
            o.cuda,
            Some(CudaVersion {
                major: 12,
                minor: 8
            })
        );
        let o = parse(&args(&["--level", "quick", "--strict", "--cuda=13.0"]), &e).unwrap();
        assert_eq!(
            o.policy,
            Policy {
                level: Level::Quick,
                mode: Mode::Strict
            }
        );
        assert_eq!(o.policy_origin, "flags");
        assert_eq!(
            o.cuda,
            Some(CudaVersion {
                major: 13,
                minor: 0
            })
        );
        let o = parse(&args(&["--policy", "off"]), &e).unwrap();
        assert_eq!(o.policy.mode, Mode::Off);
    }

    #[test]
    fn command_after_double_dash_is_kept_verbatim() {
        let o = parse(
            &args(&["--json", "--", "python", "--level", "x", "--"]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(o.json_stdout);
        assert_eq!(o.command, args(&["python", "--level", "x", "--"]));
        let o = parse(&args(&["--"]), &BTreeMap::new()).unwrap();
        assert!(o.command.is_empty());
    }

    #[test]
    fn metrics_subcommand() {
        let o = parse(&args(&["metrics"]), &env(&[])).unwrap();
        assert_eq!(
            o.action,
            Action::Metrics {
                listen: "0.0.0.0:9400".into()
            }
        );
        for a in [
            &["metrics", "--listen", "127.0.0.1:9500"][..],
            &["metrics", "--listen=127.0.0.1:9500"],
        ] {
            let o = parse(&args(a), &env(&[])).unwrap();
            assert_eq!(
                o.action,
                Action::Metrics {
                    listen: "127.0.0.1:9500".into()
                }
            );
        }
        assert_eq!(
            parse(&args(&["metrics", "--help"]), &env(&[]))
                .unwrap()
                .action,
            Action::Help
        );
        assert_eq!(
            parse(&args(&["metrics", "--listen"]), &env(&[])).unwrap_err(),
            UsageError::MissingValue("--listen".into())
        );
        assert_eq!(
            parse(&args(&["metrics", "--port", "1"]), &env(&[])).unwrap_err(),
            UsageError::UnknownFlag("--port".into())
        );
        // After `--`, `metrics` is a command like any other.
        let o = parse(&args(&["--", "metrics"]), &env(&[])).unwrap();
        assert_eq!(o.action, Action::Run);
        assert_eq!(o.command, vec![OsString::from("metrics")]);
    }

    #[test]
    fn usage_errors() {
        let none = BTreeMap::new();
        assert_eq!(
            parse(&args(&["python"]), &none).unwrap_err(),
            UsageError::StrayArgument("python".into())
        );
        assert_eq!(
            parse(&args(&["--frobnicate"]), &none).unwrap_err(),
            UsageError::UnknownFlag("--frobnicate".into())
        );
        assert_eq!(
            parse(&args(&["--level"]), &none).unwrap_err(),
            UsageError::MissingValue("--level".into())
        );
        assert!(matches!(
            parse(&args(&["--level", "slow"]), &none),
            Err(UsageError::Level(_))
        ));
        let bad_cuda = env(&[("STRATA_CUDA_VERSION", "twelve")]);
        let msg = parse(&args(&[]), &bad_cuda).unwrap_err().to_string();
        assert!(msg.contains("STRATA_CUDA_VERSION=`twelve`"), "{msg}");
        let bad_policy = env(&[("STRATA_VERIFY", "fast")]);
        assert!(matches!(
            parse(&args(&[]), &bad_policy),
            Err(UsageError::Policy(_))
        ));
    }

    #[test]
    fn allowed_sm_lists() {
        let s = parse_allowed_sm("sm_80,sm_90a, 8.6 compute_75 90", "X").unwrap();
        assert_eq!(
            s,
            vec![
                Sm {
                    major: 8,
                    minor: 0,
                    arch_specific: false
                },
                Sm {
                    major: 9,
                    minor: 0,
                    arch_specific: true
                },
                Sm {
                    major: 8,
                    minor: 6,
                    arch_specific: false
                },
                Sm {
                    major: 7,
                    minor: 5,
                    arch_specific: false
                },
                Sm {
                    major: 9,
                    minor: 0,
                    arch_specific: false
                },
            ]
        );
        assert_eq!(
            parse_allowed_sm("sm_100", "X").unwrap()[0],
            Sm {
                major: 10,
                minor: 0,
                arch_specific: false
            }
        );
        for bad in ["sm_x0", "8", "sm_", "", "sm_8.10"] {
            assert!(parse_allowed_sm(bad, "STRATA_ALLOWED_SM").is_err(), "{bad}");
        }
        let e = parse_allowed_sm("sm_80,hopper", "STRATA_ALLOWED_SM").unwrap_err();
        assert_eq!(e.entry, "hopper");
    }

    #[test]
    fn sm_matching() {
        let allowed = parse_allowed_sm("sm_80,sm_90a", "X").unwrap();
        assert_eq!(match_sm(&allowed, 8, 0), SmMatch::Exact);
        assert_eq!(match_sm(&allowed, 9, 0), SmMatch::Exact);
        assert!(matches!(match_sm(&allowed, 8, 6), SmMatch::Compatible(s) if s.minor == 0));
        assert_eq!(match_sm(&allowed, 7, 5), SmMatch::No);
        // sm_90a code does not run on anything but 9.0.
        assert_eq!(match_sm(&allowed, 10, 0), SmMatch::No);
        let only_a = parse_allowed_sm("sm_90a", "X").unwrap();
        assert_eq!(match_sm(&only_a, 9, 1), SmMatch::No);
    }

    #[test]
    fn requirements_and_defaults_from_env() {
        let e = env(&[
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.8"),
            ("NVIDIA_REQUIRE_ARCH", "arch>=8.0"),
            ("NVIDIA_DISABLE_REQUIRE", "false"),
            ("STRATA_VERIFY_LIB_PATH", "/a::/b"),
        ]);
        let o = parse(&args(&["--lib-dir", "/c"]), &e).unwrap();
        assert_eq!(o.requirements.len(), 2);
        assert_eq!(o.requirements[0].0, "NVIDIA_REQUIRE_ARCH");
        assert!(!o.disable_require);
        assert_eq!(
            o.lib_dirs,
            vec![
                PathBuf::from("/c"),
                PathBuf::from("/a"),
                PathBuf::from("/b")
            ]
        );
        assert_eq!(o.allowed_sm, default_allowed_sm());
        assert!(!o.allowed_sm_declared);
        let o = parse(&args(&[]), &env(&[("NVIDIA_DISABLE_REQUIRE", "1")])).unwrap();
        assert!(o.disable_require);
    }
}
