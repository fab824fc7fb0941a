//! Check results and the two renderings of a run: the text report (one line
//! per check, then the verdict and the fixes) and the JSON report.

use crate::json::{obj, Json};
use crate::policy::Policy;
use std::fmt::Write;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Did not apply here (one GPU, no sm_90, not asked for).
    Skip,
    /// Worked.
    Pass,
    /// Works, with a caveat worth reading; does not stop the command.
    Warn,
    /// Broken; stops the command in strict mode.
    Fail,
}

impl Status {
    /// Upper-case word for the text report.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }

    /// Lower-case word for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// A measured figure and what it is judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The measurement.
    pub value: f64,
    /// Its unit, e.g. `TFLOP/s`.
    pub unit: &'static str,
    /// Pass threshold (value must be at least this), if any.
    pub threshold: Option<f64>,
    /// Datasheet peak, if known.
    pub peak: Option<f64>,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Short stable name, e.g. `mma-sm80`.
    pub name: String,
    /// GPU ordinal for per-GPU checks.
    pub gpu: Option<u32>,
    /// Result.
    pub status: Status,
    /// Wall time of the check in milliseconds.
    pub ms: f64,
    /// What was found, in words.
    pub detail: String,
    /// A measured figure, for throughput checks.
    pub figure: Option<Figure>,
    /// How to fix a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    /// A new check with the given status and detail.
    pub fn new(name: &str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            gpu: None,
            status,
            ms: 0.0,
            detail: detail.into(),
            figure: None,
            fix: None,
        }
    }

    /// Passing check.
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Pass, detail)
    }

    /// Failing check.
    pub fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Fail, detail)
    }

    /// Warning.
    pub fn warn(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Warn, detail)
    }

    /// Skipped check.
    pub fn skip(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Skip, detail)
    }

    /// Sets the GPU ordinal.
    pub fn gpu(mut self, gpu: u32) -> Self {
        self.gpu = Some(gpu);
        self
    }

    /// Sets the elapsed time.
    pub fn ms(mut self, ms: f64) -> Self {
        self.ms = ms;
        self
    }

    /// Sets the fix text.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Sets the figure.
    pub fn figure(mut self, figure: Figure) -> Self {
        self.figure = Some(figure);
        self
    }

    /// `gpu0 mma-sm80`, or just the name for global checks.
    pub fn label(&self) -> String {
        match self.gpu {
            Some(g) => format!("gpu{g} {}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A GPU as the driver describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuInfo {
    /// CUDA ordinal.
    pub index: u32,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability.
    pub cc: (u32, u32),
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// `GPU-xxxxxxxx-...`.
    pub uuid: String,
    /// PCI bus id, e.g. `0000:00:1E.0`.
    pub pci_bus_id: String,
    /// Brand in the `NVIDIA_REQUIRE_*` spelling, when NVML was consulted.
    pub brand: Option<String>,
}

/// A shared library present in the process, with its version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LibraryInfo {
    /// Short name, e.g. `cuBLAS`, or the file name for libraries the
    /// verifier did not load itself.
    pub name: String,
    /// Path as mapped into the process (symlinks resolved).
    pub path: String,
    /// Version as reported by the library or its file name.
    pub version: Option<String>,
}

/// The driver as found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriverInfo {
    /// Driver version, e.g. `580.159.04`.
    pub version: Option<String>,
    /// CUDA version the driver supports, e.g. `13.0`.
    pub cuda: Option<String>,
    /// libcuda file used.
    pub libcuda: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// This program's version.
    pub tool_version: &'static str,
    /// Level and mode.
    pub policy: Policy,
    /// Where the policy came from.
    pub policy_origin: String,
    /// CUDA version the image declares.
    pub image_cuda: Option<String>,
    /// Allowed compute capabilities.
    pub allowed_sm: Vec<String>,
    /// Driver facts.
    pub driver: DriverInfo,
    /// GPUs seen.
    pub gpus: Vec<GpuInfo>,
    /// Check results in report order.
    pub checks: Vec<Check>,
    /// Libraries in the process at the end.
    pub libraries: Vec<LibraryInfo>,
    /// Wall time from start to report, in milliseconds.
    pub total_ms: f64,
}

impl Report {
    /// An empty report.
    pub fn new(policy: Policy, policy_origin: &str) -> Self {
        Report {
            tool_version: env!("CARGO_PKG_VERSION"),
            policy,
            policy_origin: policy_origin.to_string(),
            image_cuda: None,
            allowed_sm: Vec::new(),
            driver: DriverInfo::default(),
            gpus: Vec::new(),
            checks: Vec::new(),
            libraries: Vec::new(),
            total_ms: 0.0,
        }
    }

    /// The worst status of any check (Pass when all passed or skipped).
    pub fn verdict(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::Skip)
            .max()
            .unwrap_or(Status::Pass)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The text report, for stderr.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata-verify {}: {} level, {} (policy from {})",
            self.tool_version,
            self.policy.level.as_str(),
            self.policy.mode.as_str(),
            self.policy_origin
        );
        let width = self
            .checks
            .iter()
            .map(|c| c.label().len())
            .max()
            .unwrap_or(0)
            .max(12);
        for c in &self.checks {
            let _ = write!(
                out,
                "  {}  {:<width$} {:>8.1} ms  {}",
                c.status.word(),
                c.label(),
                c.ms,
                c.detail
            );
            if let Some(f) = &c.figure {
                let _ = write!(out, " [{}]", figure_text(f));
            }
            out.push('\n');
        }
        if !self.libraries.is_empty() {
            out.push_str("libraries in this process:\n");
            let w = self
                .libraries
                .iter()
                .map(|l| l.name.len())
                .max()
                .unwrap_or(0);
            for l in &self.libraries {
                let _ = writeln!(
                    out,
                    "  {:<w$}  {:<12}  {}",
                    l.name,
                    l.version.as_deref().unwrap_or("?"),
                    l.path
                );
            }
        }
        let verdict = self.verdict();
        let _ = writeln!(
            out,
            "verdict: {} ({} passed, {} warnings, {} failed, {} skipped) in {:.0} ms",
            verdict.word(),
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip),
            self.total_ms
        );
        for c in self
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
        {
            let _ = writeln!(out, "{} {}: {}", c.status.word(), c.label(), c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "  fix: {fix}");
            }
        }
        out
    }

    /// The JSON report.
    pub fn to_json(&self) -> Json {
        let checks = self
            .checks
            .iter()
            .map(|c| {
                obj([
                    ("name", Json::from(c.name.as_str())),
                    ("gpu", c.gpu.map(i64::from).into()),
                    ("status", c.status.key().into()),
                    ("ms", c.ms.into()),
                    ("detail", c.detail.as_str().into()),
                    ("fix", c.fix.clone().into()),
                    (
                        "figure",
                        c.figure
                            .as_ref()
                            .map(|f| {
                                obj([
                                    ("value", f.value.into()),
                                    ("unit", f.unit.into()),
                                    ("threshold", f.threshold.into()),
                                    ("peak", f.peak.into()),
                                ])
                            })
                            .unwrap_or(Json::Null),
                    ),
                ])
            })
            .collect();
        let gpus = self
            .gpus
            .iter()
            .map(|g| {
                obj([
                    ("index", Json::Int(i64::from(g.index))),
                    ("name", g.name.as_str().into()),
                    (
                        "compute_capability",
                        format!("{}.{}", g.cc.0, g.cc.1).into(),
                    ),
                    ("sms", Json::Int(i64::from(g.sms))),
                    (
                        "memory_bytes",
                        Json::Int(i64::try_from(g.memory_bytes).unwrap_or(i64::MAX)),
                    ),
                    ("uuid", g.uuid.as_str().into()),
                    ("pci_bus_id", g.pci_bus_id.as_str().into()),
                    ("brand", g.brand.clone().into()),
                ])
            })
            .collect();
        let libs = self
            .libraries
            .iter()
            .map(|l| {
                obj([
                    ("name", l.name.as_str().into()),
                    ("path", l.path.as_str().into()),
                    ("version", l.version.clone().into()),
                ])
            })
            .collect();
        obj([
            ("schema", Json::from("strata-verify/report/v1")),
            ("tool_version", self.tool_version.into()),
            ("level", self.policy.level.as_str().into()),
            ("mode", self.policy.mode.as_str().into()),
            ("policy_origin", self.policy_origin.as_str().into()),
            ("verdict", self.verdict().key().into()),
            ("total_ms", self.total_ms.into()),
            (
                "image",
                obj([
                    ("cuda", self.image_cuda.clone().into()),
                    (
                        "allowed_sm",
                        Json::Arr(self.allowed_sm.iter().map(|s| s.as_str().into()).collect()),
                    ),
                ]),
            ),
            (
                "driver",
                obj([
                    ("version", self.driver.version.clone().into()),
                    ("cuda", self.driver.cuda.clone().into()),
                    ("libcuda", self.driver.libcuda.clone().into()),
                ]),
            ),
            ("gpus", Json::Arr(gpus)),
            ("checks", Json::Arr(checks)),
            ("libraries", Json::Arr(libs)),
        ])
    }
}

/// `796.1 TFLOP/s, need >= 692.6 (80% of 989.4 peak)`.
pub fn figure_text(f: &Figure) -> String {
    let mut s = format!("{:.1} {}", f.value, f.unit);
    if let Some(t) = f.threshold {
        let _ = write!(s, ", need >= {t:.1}");
    }
    if let Some(p) = f.peak {
        if p > 0.0 {
            let _ = write!(s, " ({:.0}% of {:.1} peak)", 100.0 * f.value / p, p);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_string;
    use crate::policy::{Level, Mode};

    fn sample() -> Report {
        let mut r = Report::new(
            Policy {
                level: Level::Full,
                mode: Mode::Strict,
            },
            "STRATA_VERIFY",
        );
        r.tool_version = "0.0.0-test";
        r.image_cuda = Some("12.8".into());
        r.allowed_sm = vec!["sm_80".into(), "sm_90".into()];
        r.driver = DriverInfo {
            version: Some("580.159.04".into()),
            cuda: Some("13.0".into()),
            libcuda: Some("/usr/local/nvidia/lib64/libcuda.so.580.159.04".into()),
        };
        r.checks
            .push(Check::pass("cuinit", "driver API 13.0, 1 GPU").ms(203.25));
        r.checks.push(
            Check::pass("gemm-bf16", "cuBLASLt 8192^3")
                .gpu(0)
                .ms(30.0)
                .figure(Figure {
                    value: 796.04,
                    unit: "TFLOP/s",
                    threshold: Some(692.6),
                    peak: Some(989.4),
                }),
        );
        r.checks
            .push(Check::skip("nccl-allreduce", "1 GPU visible").ms(0.0));
        r.libraries.push(LibraryInfo {
            name: "cuBLAS".into(),
            path: "/x/libcublas.so.12.8.4.1".into(),
            version: Some("12.8.4".into()),
        });
        r.total_ms = 612.4;
        r
    }

    #[test]
    fn verdict_is_worst_non_skip_status() {
        let mut r = sample();
        assert_eq!(r.verdict(), Status::Pass);
        r.checks.push(Check::warn("x", "y"));
        assert_eq!(r.verdict(), Status::Warn);
        r.checks.push(Check::fail("z", "w"));
        assert_eq!(r.verdict(), Status::Fail);
        let only_skips = Report {
            checks: vec![Check::skip("a", "b")],
            ..sample()
        };
        assert_eq!(only_skips.verdict(), Status::Pass);
    }

    #[test]
    fn text_report_has_one_line_per_check_and_the_verdict() {
        let text = sample().render_text();
        let expected = "\
strata-verify 0.0.0-test: full level, strict (policy from STRATA_VERIFY)
  PASS  cuinit            203.2 ms  driver API 13.0, 1 GPU
  PASS  gpu0 gemm-bf16     30.0 ms  cuBLASLt 8192^3 [796.0 TFLOP/s, need >= 692.6 (80% of 989.4 peak)]
  SKIP  nccl-allreduce      0.0 ms  1 GPU visible
libraries in this process:
  cuBLAS  12.8.4        /x/libcublas.so.12.8.4.1
verdict: PASS (2 passed, 0 warnings, 0 failed, 1 skipped) in 612 ms
";
        assert_eq!(text, expected);
    }

    #[test]
    fn failures_are_repeated_with_their_fix() {
        let mut r = sample();
        r.checks.push(
            Check::fail("arch", "sm_90 is not in the allowed set sm_80")
                .gpu(0)
                .fix("rebuild with gpu.arch: [sm_90]"),
        );
        let text = r.render_text();
        assert!(text.contains("verdict: FAIL"), "{text}");
        assert!(text.ends_with("FAIL gpu0 arch: sm_90 is not in the allowed set sm_80\n  fix: rebuild with gpu.arch: [sm_90]\n"), "{text}");
    }

    #[test]
    fn json_report_shape() {
        let s = to_string(&sample().to_json());
        assert!(s.starts_with("{\n  \"checks\": [\n"), "{s}");
        assert!(s.contains("\"schema\": \"strata-verify/report/v1\""));
        assert!(s.contains("\"verdict\": \"pass\""));
        assert!(s.contains("\"value\": 796.04"));
        assert!(s.contains("\"gpu\": null"));
        assert!(s.contains("\"cuda\": \"12.8\""));
        // Deterministic: same report, same bytes.
        assert_eq!(s, to_string(&sample().to_json()));
    }
}
