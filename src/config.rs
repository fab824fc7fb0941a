//! The user configuration file for site settings that do not belong in specs:
//! mirrors, URL rewrites, offline mode, proxy, CA certificates.
//!
//! Read from `$STRATA_CONFIG`, else `$XDG_CONFIG_HOME/strata/config.toml`, else
//! `~/.config/strata/config.toml`; absent is fine. Command-line options add to
//! (mirrors, rewrites) or override (offline) what the file says.
//!
//! ```toml
//! offline = false
//! mirrors = ["/srv/strata-mirror"]
//! proxy = "http://proxy.internal:3128"
//! ca_files = ["/etc/ssl/corp-ca.pem"]
//! cache_from = ["registry.internal:5000/ci/strata-cache"]
//! cache_to = "registry.internal:5000/ci/strata-cache"
//! [[rewrite]]
//! from = "https://files.pythonhosted.org/"
//! to = "https://pypi.internal.example/files/"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A URL prefix rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Prefix to replace.
    pub from: String,
    /// Replacement.
    pub to: String,
}

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Never open network connections.
    #[serde(default)]
    pub offline: bool,
    /// Mirror directories searched before the network.
    #[serde(default)]
    pub mirrors: Vec<PathBuf>,
    /// URL prefix rewrites, first match wins.
    #[serde(default)]
    pub rewrite: Vec<Rewrite>,
    /// A proxy for every request (`http://proxy.internal:3128`).
    #[serde(default)]
    pub proxy: Option<String>,
    /// Extra CA certificates (PEM files) trusted for every download.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Registry repositories whose layer cache builds read (`--cache-from`).
    #[serde(default)]
    pub cache_from: Vec<String>,
    /// The registry repository builds write their layers to (`--cache-to`).
    #[serde(default)]
    pub cache_to: Option<String>,
}

/// Where the configuration file is looked for.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_CONFIG") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(p).join("strata/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/strata/config.toml"))
}

/// Why the configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `STRATA_CONFIG` names a file that is not there.
    #[error("STRATA_CONFIG names {}, which does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The file is not a valid configuration.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (names the key and line).
        #[source]
        source: toml::de::Error,
    },
}

/// Loads the configuration (an absent file is the default configuration).
pub fn load() -> Result<(Config, Option<PathBuf>), ConfigError> {
    match path() {
        Some(p) if p.is_file() => load_from(&p).map(|c| (c, Some(p))),
        Some(p) if std::env::var_os("STRATA_CONFIG").is_some() => Err(ConfigError::Missing { path: p }),
        _ => Ok((Config::default(), None)),
    }
}

/// Loads a configuration file.
pub fn load_from(p: &Path) -> Result<Config, ConfigError> {
    let text = fs_err::read_to_string(p).map_err(crate::error::io_err::<ConfigError>("reading", p))?;
    let mut c: Config =
        toml::from_str(&text).map_err(|source| ConfigError::Invalid { path: p.to_path_buf(), source })?;
    // Relative mirror paths are relative to the file.
    let base = p.parent().unwrap_or(Path::new("."));
    for m in c.mirrors.iter_mut().chain(c.ca_files.iter_mut()) {
        if m.is_relative() && !m.starts_with("docker:") {
            *m = base.join(&*m);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirrors_and_rewrites_and_refuses_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        fs_err::write(
            &p,
            "offline = true\nmirrors = [\"m\"]\n[[rewrite]]\nfrom = \"https://a/\"\nto = \"http://b/\"\n",
        )
        .unwrap();
        let c = load_from(&p).unwrap();
        assert!(c.offline);
        assert_eq!(c.mirrors, vec![d.path().join("m")]);
        assert_eq!(c.rewrite[0].to, "http://b/");
        fs_err::write(&p, "mirror = []\n").unwrap();
        assert!(load_from(&p).unwrap_err().to_string().contains("unknown field"));
    }
}
