//! CUDA toolkit ↔ driver compatibility: version comparison and the table of
//! minimum Linux x86-64 drivers per CUDA release.
//!
//! Facts come from NVIDIA's CUDA Toolkit release notes ("CUDA Toolkit and
//! Corresponding Driver Versions") and the CUDA compatibility guide; the
//! table is reproduced in docs/verifier.md.

use std::cmp::Ordering;
use std::fmt;

/// A dotted numeric version such as `12.8`, `580.159.04` or `9.0`.
///
/// Comparison follows libnvidia-container's rule: numeric component by
/// component, and trailing zero components do not count (`12.8 == 12.8.0`).
#[derive(Clone, Debug)]
pub struct DottedVersion {
    parts: Vec<u64>,
    text: String,
}

/// A version string that is not made of digits and dots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{found}` is not a version: expected digits separated by dots, such as 12.8 or 580.159.04"
)]
pub struct VersionError {
    /// The text that failed to parse.
    pub found: String,
}

impl DottedVersion {
    /// Parses `12.8`, `12`, `580.159.04`. Empty components (`12..8`) are
    /// skipped, as the runtime's own parser does.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let text = text.trim();
        let err = || VersionError {
            found: text.to_string(),
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(err());
        }
        let mut parts = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            parts.push(part.parse::<u64>().map_err(|_| err())?);
        }
        if parts.is_empty() {
            return Err(err());
        }
        Ok(DottedVersion {
            parts,
            text: text.to_string(),
        })
    }

    /// The components with trailing zeros removed: the canonical form used for
    /// comparison.
    fn significant(&self) -> &[u64] {
        let mut end = self.parts.len();
        while end > 0 && self.parts[end - 1] == 0 {
            end -= 1;
        }
        &self.parts[..end]
    }

    /// Numeric comparison (see the type's documentation).
    pub fn compare(&self, other: &DottedVersion) -> Ordering {
        self.significant().cmp(other.significant())
    }

    /// First component.
    pub fn major(&self) -> u64 {
        self.parts.first().copied().unwrap_or(0)
    }

    /// Second component, 0 when absent.
    pub fn minor(&self) -> u64 {
        self.parts.get(1).copied().unwrap_or(0)
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DottedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A CUDA version as `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CudaVersion {
    /// Major, e.g. 12.
    pub major: u32,
    /// Minor, e.g. 8.
    pub minor: u32,
}

impl CudaVersion {
    /// Parses `12.8` (a third component, as in `12.8.1`, is accepted and
    /// ignored: driver requirements only depend on major.minor).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let v = DottedVersion::parse(text)?;
        let err = || VersionError {
            found: text.trim().to_string(),
        };
        let major = u32::try_from(v.major()).map_err(|_| err())?;
        let minor = u32::try_from(v.minor()).map_err(|_| err())?;
        Ok(CudaVersion { major, minor })
    }

    /// Decodes the integer that `cuDriverGetVersion` returns (13000 → 13.0,
    /// 12080 → 12.8).
    pub fn from_driver_api(value: i32) -> Self {
        let value = value.max(0) as u32;
        CudaVersion {
            major: value / 1000,
            minor: (value % 1000) / 10,
        }
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Minimum Linux x86-64 driver for each CUDA release (GA), from the CUDA
/// Toolkit release notes. A release missing here (12.7 was never shipped)
/// takes the next listed release's minimum.
pub const MIN_DRIVER: &[(CudaVersion, &str)] = &[
    (
        CudaVersion {
            major: 12,
            minor: 0,
        },
        "525.60.13",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 1,
        },
        "530.30.02",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 2,
        },
        "535.54.03",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 3,
        },
        "545.23.06",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 4,
        },
        "550.54.14",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 5,
        },
        "555.42.02",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 6,
        },
        "560.28.03",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 8,
        },
        "570.26",
    ),
    (
        CudaVersion {
            major: 12,
            minor: 9,
        },
        "575.51.03",
    ),
    (
        CudaVersion {
            major: 13,
            minor: 0,
        },
        "580.65.06",
    ),
    (
        CudaVersion {
            major: 13,
            minor: 1,
        },
        "590.44.01",
    ),
];

/// Oldest driver of each CUDA major that runs that major's applications
/// through minor-version compatibility (CUDA compatibility guide).
pub const MINOR_COMPAT_FLOOR: &[(u32, &str)] =
    &[(11, "450.80.02"), (12, "525.60.13"), (13, "580.65.06")];

/// The minimum driver for native support of `cuda`, when the table knows it.
pub fn min_driver_for(cuda: CudaVersion) -> Option<&'static str> {
    MIN_DRIVER
        .iter()
        .find(|(release, _)| release.major == cuda.major && release.minor >= cuda.minor)
        .map(|(_, driver)| *driver)
}

/// The minor-version-compatibility floor for a CUDA major.
pub fn minor_compat_floor(major: u32) -> Option<&'static str> {
    MINOR_COMPAT_FLOOR
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, d)| *d)
}

/// How a driver relates to the CUDA version an image was built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compat {
    /// The driver's CUDA version is at least the image's.
    Native,
    /// Same major, older minor: runs through minor-version compatibility,
    /// with limits (no JIT of the newer toolkit's PTX, newer APIs missing).
    MinorCompat {
        /// Driver needed for native support, if known.
        native_driver: Option<&'static str>,
    },
    /// The driver is too old for the image's CUDA major.
    TooOld {
        /// Driver needed for native support, if known.
        native_driver: Option<&'static str>,
        /// Oldest driver that would run it through minor-version compatibility.
        floor: Option<&'static str>,
    },
}

/// Compares the image's CUDA version with what the driver supports
/// (`cuDriverGetVersion`, which already accounts for a forward-compatibility
/// `cuda-compat` libcuda when one is in use).
pub fn evaluate(image: CudaVersion, driver_api: CudaVersion) -> Compat {
    if driver_api >= image {
        Compat::Native
    } else if driver_api.major == image.major {
        Compat::MinorCompat {
            native_driver: min_driver_for(image),
        }
    } else {
        Compat::TooOld {
            native_driver: min_driver_for(image),
            floor: minor_compat_floor(image.major),
        }
    }
}

/// Extracts the driver version from a libcuda file name such as
/// `libcuda.so.580.159.04` (the file the `libcuda.so.1` link points to).
pub fn driver_version_from_libcuda_name(file_name: &str) -> Option<DottedVersion> {
    let rest = file_name.strip_prefix("libcuda.so.")?;
    // `libcuda.so.1` is the link name, not a driver version.
    if !rest.contains('.') {
        return None;
    }
    DottedVersion::parse(rest).ok()
}

/// Extracts the driver version from the text of `/proc/driver/nvidia/version`
/// ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu ...").
pub fn driver_version_from_proc(text: &str) -> Option<DottedVersion> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .filter(|w| w.contains('.'))
        .find_map(|w| DottedVersion::parse(w).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DottedVersion {
        DottedVersion::parse(s).unwrap()
    }

    #[test]
    fn dotted_versions_compare_numerically_and_ignore_trailing_zeros() {
        assert_eq!(v("12.8").compare(&v("12.8.0")), Ordering::Equal);
        assert_eq!(v("12.10").compare(&v("12.9")), Ordering::Greater);
        assert_eq!(v("580.159.04").compare(&v("580.65.06")), Ordering::Greater);
        assert_eq!(v("470").compare(&v("470.57.02")), Ordering::Less);
        assert_eq!(v("12..8").compare(&v("12.8")), Ordering::Equal);
    }

    #[test]
    fn bad_versions_say_what_was_found() {
        let e = DottedVersion::parse("12.8-rc1").unwrap_err();
        assert_eq!(e.found, "12.8-rc1");
        assert!(e.to_string().contains("digits separated by dots"));
        assert!(DottedVersion::parse("").is_err());
        assert!(DottedVersion::parse("...").is_err());
    }

    #[test]
    fn driver_api_integers_decode() {
        assert_eq!(
            CudaVersion::from_driver_api(13000),
            CudaVersion {
                major: 13,
                minor: 0
            }
        );
        assert_eq!(
            CudaVersion::from_driver_api(12080),
            CudaVersion {
                major: 12,
                minor: 8
            }
        );
        assert_eq!(
            CudaVersion::from_driver_api(11040),
            CudaVersion {
                major: 11,
                minor: 4
            }
        );
    }

    #[test]
    fn table_lookup_uses_next_release_for_gaps() {
        assert_eq!(
            min_driver_for(CudaVersion::parse("12.8").unwrap()),
            Some("570.26")
        );
        assert_eq!(
            min_driver_for(CudaVersion::parse("12.7").unwrap()),
            Some("570.26")
        );
        assert_eq!(
            min_driver_for(CudaVersion::parse("13.0").unwrap()),
            Some("580.65.06")
        );
        assert_eq!(min_driver_for(CudaVersion::parse("13.9").unwrap()), None);
        assert_eq!(min_driver_for(CudaVersion::parse("11.8").unwrap()), None);
    }

    #[test]
    fn table_is_sorted_and_monotonic() {
        for pair in MIN_DRIVER.windows(2) {
            assert!(pair[0].0 < pair[1].0);
            assert_eq!(v(pair[0].1).compare(&v(pair[1].1)), Ordering::Less);
        }
    }

    #[test]
    fn compat_evaluation() {
        let c = |s: &str| CudaVersion::parse(s).unwrap();
        assert_eq!(evaluate(c("12.8"), c("13.0")), Compat::Native);
        assert_eq!(evaluate(c("12.8"), c("12.8")), Compat::Native);
        assert_eq!(
            evaluate(c("12.8"), c("12.2")),
            Compat::MinorCompat {
                native_driver: Some("570.26")
            }
        );
        assert_eq!(
            evaluate(c("13.0"), c("12.9")),
            Compat::TooOld {
                native_driver: Some("580.65.06"),
                floor: Some("580.65.06")
            }
        );
    }

    #[test]
    fn driver_version_from_file_names_and_proc() {
        assert_eq!(
            driver_version_from_libcuda_name("libcuda.so.580.159.04")
                .unwrap()
                .as_str(),
            "580.159.04"
        );
        assert!(driver_version_from_libcuda_name("libcuda.so.1").is_none());
        assert!(driver_version_from_libcuda_name("libcuda.so").is_none());
        let proc_text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu Oct  2 2025\nGCC version:  gcc 13\n";
        assert_eq!(
            driver_version_from_proc(proc_text).unwrap().as_str(),
            "580.159.04"
        );
        assert!(driver_version_from_proc("garbage").is_none());
    }
}
