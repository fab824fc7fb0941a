//! The YAML schema of image specs and layer files. Every field's doc comment
//! says whether it is required; these comments are also the JSON Schema
//! descriptions (`docs/spec.schema.json`).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::compress::Algorithm;
use crate::digest::Digest;

/// Spec format version. Only `1` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Version(pub u32);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v != 1 {
            return Err(serde::de::Error::custom(format!(
                "unsupported spec version {v}; this strata reads `version: 1`"
            )));
        }
        Ok(Version(v))
    }
}

/// File permission bits written as a quoted octal string (`"0644"`, `"755"`).
/// Unquoted numbers are refused: YAML reads `0644` as a decimal or octal
/// integer depending on the YAML version, which silently changes modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted octal mode such as \"0644\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Mode, E> {
                Err(E::custom(format!(
                    "mode {v} must be a quoted octal string, e.g. \"0{v}\" (unquoted numbers are ambiguous in YAML)"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Mode, E> {
                self.visit_u64(v.unsigned_abs())
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Mode, E> {
                let digits = s.strip_prefix("0o").unwrap_or(s);
                if !(3..=5).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(E::custom(format!("`{s}` is not an octal mode like \"0644\" or \"1777\"")));
                }
                let m = u32::from_str_radix(digits, 8).map_err(E::custom)?;
                if m > 0o7777 {
                    return Err(E::custom(format!("mode `{s}` has bits above 07777")));
                }
                Ok(Mode(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// An absolute path inside the image, e.g. `/etc/motd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePath(pub String);

impl<'de> Deserialize<'de> for ImagePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') {
            // Suggest the absolute form only when it is itself valid.
            let fixed = format!("/{s}");
            return Err(serde::de::Error::custom(match crate::tree::TreePath::from_image_path(&fixed) {
                Ok(_) => format!("image path `{s}` must be absolute (start with `/`), e.g. `{fixed}`"),
                Err(_) => format!(
                    "image path `{s}` must be absolute (start with `/`) and have no `..` components, e.g. `/opt/tool`"
                ),
            }));
        }
        crate::tree::TreePath::from_image_path(&s).map_err(serde::de::Error::custom)?;
        Ok(ImagePath(s))
    }
}

/// An absolute directory in the image; unlike [`ImagePath`] it may be `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageDir(pub String);

impl<'de> Deserialize<'de> for ImageDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim_matches('/').is_empty() && s.starts_with('/') {
            return Ok(ImageDir("/".into()));
        }
        ImagePath::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s)).map(|p| ImageDir(p.0))
    }
}

impl ImageDir {
    /// The normalised tree path, `None` for the root.
    pub fn tree_path(&self) -> Option<crate::tree::TreePath> {
        crate::tree::TreePath::from_image_path(&self.0).ok()
    }
}

impl ImagePath {
    /// The normalised tree path.
    pub fn tree_path(&self) -> crate::tree::TreePath {
        // Validated when deserialised.
        crate::tree::TreePath::from_image_path(&self.0).unwrap_or_else(|_| unreachable!("validated path"))
    }
}

/// A SHA-256 digest, `sha256:<hex>` or bare hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sha256(pub Digest);

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map(Sha256).map_err(serde::de::Error::custom)
    }
}

macro_rules! string_schema {
    ($ty:ident, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

string_schema!(Version, "Version", {"type": "integer", "enum": [1], "description": "Spec format version."});
string_schema!(Mode, "Mode", {"type": "string", "pattern": "^(0o)?[0-7]{3,5}$", "description": "Quoted octal permission bits, e.g. \"0644\"."});
string_schema!(ImagePath, "ImagePath", {"type": "string", "pattern": "^/", "description": "Absolute path in the image."});
string_schema!(ImageDir, "ImageDir", {"type": "string", "pattern": "^/", "description": "Absolute directory in the image (`/` allowed)."});
string_schema!(Sha256, "Sha256", {"type": "string", "pattern": "^(sha256:)?[0-9a-f]{64}$", "description": "SHA-256 digest."});

/// An image spec (`specs/*.yaml`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Required. Spec format version: `1`.
    pub version: Version,
    /// Required. Image name, used in messages and as the default repository name.
    pub name: String,
    /// Optional. Tag used when the output names none. Default: `latest`.
    #[serde(default)]
    pub tag: Option<String>,
    /// Optional. `linux/amd64` or `linux/arm64`. Default: `linux/amd64`.
    #[serde(default)]
    pub platform: Option<String>,
    /// Optional. Several platforms (instead of `platform`): the result is an
    /// OCI image index with one full image per platform, each locked in
    /// `SPEC.<os>-<arch>.lock`. Default: none.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Optional. Seconds since 1970-01-01 used for every file's mtime and the
    /// image's `created` time. `SOURCE_DATE_EPOCH` overrides it. Default: 0.
    #[serde(default)]
    pub epoch: Option<u64>,
    /// Optional. Layer compression. Default: gzip level 6.
    #[serde(default)]
    pub compression: Option<CompressionSpec>,
    /// Required. The layers, bottom first. Each entry becomes one layer (some
    /// sources may split into several); `include:` entries splice in the
    /// layers of a layer file.
    pub layers: Vec<LayerEntry>,
    /// Optional. GPU stack the image targets; adds the `strata-verify` entrypoint.
    #[serde(default)]
    pub gpu: Option<GpuSpec>,
    /// Optional. Runtime configuration (user, env, entrypoint, ...).
    #[serde(default)]
    pub config: Option<ConfigSpec>,
    /// Optional. Extra manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Optional. Also write every config label as a manifest annotation
    /// (registries and `skopeo inspect` show annotations; an annotation set
    /// otherwise keeps its value). Default: false.
    #[serde(default)]
    pub annotations_from_labels: bool,
}

/// A reusable layer file (`layers/*.yaml`), spliced into an image spec with `include:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerFile {
    /// Required. Spec format version: `1`.
    pub version: Version,
    /// Optional. What these layers provide.
    #[serde(default)]
    pub description: Option<String>,
    /// Required. The layers, bottom first.
    pub layers: Vec<LayerEntry>,
}

/// Layer compression settings.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressionSpec {
    /// Required. `gzip`, `zstd` or `none`.
    pub algorithm: Algorithm,
    /// Optional. gzip 1-9 (default 6), zstd 1-19 (default 3).
    #[serde(default)]
    pub level: Option<i32>,
    /// Optional, gzip only. Carry files that already are raw deflate streams
    /// (wheel members) as gzip members of their own instead of compressing
    /// them again. Default: true.
    #[serde(default)]
    pub splice: Option<bool>,
}

/// One entry of `layers:`. Either `include:` alone, or any combination of
/// sources, which are merged into one layer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerEntry {
    /// Optional. A layer file whose layers are spliced in here (path relative
    /// to this file). Cannot be combined with other keys.
    #[serde(default)]
    pub include: Option<String>,
    /// Optional. Layer name shown in history and messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Optional. Regular files.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Optional. Directories.
    #[serde(default)]
    pub dirs: Vec<DirSpec>,
    /// Optional. Symbolic links.
    #[serde(default)]
    pub symlinks: Vec<SymlinkSpec>,
    /// Optional. Directory trees copied from the build context, with
    /// include/exclude globs and owner/mode overrides.
    #[serde(default)]
    pub copy: Vec<CopySpec>,
    /// Optional. A tar archive (plain, .gz, .zst or .xz) unpacked into the layer.
    #[serde(default)]
    pub tarball: Option<TarballSpec>,
    /// Optional. Users and groups: writes `/etc/passwd` and `/etc/group`.
    #[serde(default)]
    pub accounts: Option<AccountsSpec>,
    /// Optional. Debian packages, resolved by `strata lock` into pinned
    /// `.deb`s and unpacked without dpkg (see docs/debian.md).
    #[serde(default)]
    pub debs: Option<DebsSpec>,
    /// Optional. Python wheels from a PEP 751 `pylock.toml`, installed without
    /// pip. Splits into several layers, so it must be the entry's only source.
    #[serde(default)]
    pub python: Option<PythonSpec>,
    /// Optional. Precompiled bytecode (`__pycache__/*.pyc`, hash-based) for
    /// the standard library and every installed package of the layers
    /// below, made at build time by the image's own interpreter in a
    /// sandbox (see docs/reproducibility.md). Must be the entry's only source.
    #[serde(default)]
    pub bytecode: Option<BytecodeSpec>,
    /// Optional. CA certificates (PEM files in the build context, relative to
    /// this file) installed as `/usr/local/share/ca-certificates/NAME.crt`
    /// and added to the image's CA bundle, as `update-ca-certificates` does.
    #[serde(default)]
    pub ca_certificates: Vec<String>,
    /// Optional. Symbolic links of earlier layers (such as the merged-/usr
    /// `/bin`) that this layer may replace with a directory or a file.
    /// Without it, replacing one is an error: paths below a link resolve
    /// through it instead.
    #[serde(default)]
    pub replace_symlinks: Vec<ImagePath>,
    /// Optional. Globs of image paths (`/lib/firmware/**`, `**/*.elf`) whose
    /// ELF executables and shared objects may be built for another CPU than
    /// the image's platform, for deliberate cases such as firmware or
    /// emulator payloads. Any other such file is an error. Default: none.
    #[serde(default)]
    pub foreign_elf: Vec<String>,
}

impl LayerEntry {
    /// True when no source is given.
    pub fn has_sources(&self) -> bool {
        !self.files.is_empty()
            || !self.dirs.is_empty()
            || !self.symlinks.is_empty()
            || !self.copy.is_empty()
            || !self.ca_certificates.is_empty()
            || self.tarball.is_some()
            || self.accounts.is_some()
            || self.debs.is_some()
            || self.python.is_some()
            || self.bytecode.is_some()
    }
}

/// A regular file. Exactly one of `content`, `content_base64` and `source`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Required. Absolute path in the image.
    pub path: ImagePath,
    /// Text content (UTF-8).
    #[serde(default)]
    pub content: Option<String>,
    /// Binary content, base64 (standard alphabet, padding optional).
    #[serde(default)]
    pub content_base64: Option<String>,
    /// A local file, relative to the spec file that names it.
    #[serde(default)]
    pub source: Option<String>,
    /// Optional. Permission bits. Default: `"0644"`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Optional. Owner id. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Optional. Group id. Default: 0.
    #[serde(default)]
    pub gid: u32,
    /// Optional. Modification time (seconds since 1970). Default: the build epoch.
    #[serde(default)]
    pub mtime: Option<u64>,
}

/// A directory tree copied from the build context.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    /// Required. A directory in the build context, relative to this file.
    pub from: String,
    /// Required. The image directory its contents are copied into (`/` allowed).
    pub to: ImageDir,
    /// Optional. Globs of what to copy, relative to `from`: `*` and `?` stay
    /// within one name, `**` spans directories, a pattern without `/`
    /// matches a name at any depth, and a matching directory brings
    /// everything below it. Default: everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Optional. Globs of what to leave out (same syntax; a matching
    /// directory is skipped whole). Applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Optional. Permission bits of every copied file. Default: `"0755"` for
    /// files with an executable bit in the build context, else `"0644"`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Optional. Permission bits of every copied directory (and `to`). Default: `"0755"`.
    #[serde(default)]
    pub dir_mode: Option<Mode>,
    /// Optional. Owner id of everything copied. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Optional. Group id of everything copied. Default: 0.
    #[serde(default)]
    pub gid: u32,
}

/// A directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// Required. Absolute path in the image.
    pub path: ImagePath,
    /// Optional. Permission bits. Default: `"0755"`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Optional. Owner id. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Optional. Group id. Default: 0.
    #[serde(default)]
    pub gid: u32,
}

/// A symbolic link.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    /// Required. Absolute path of the link in the image.
    pub path: ImagePath,
    /// Required. Link target, absolute or relative, stored as written.
    pub target: String,
    /// Optional. Owner id. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Optional. Group id. Default: 0.
    #[serde(default)]
    pub gid: u32,
}

/// A tar archive. Exactly one of `url` and `path`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TarballSpec {
    /// An `http://` or `https://` URL. Requires `sha256`.
    #[serde(default)]
    pub url: Option<String>,
    /// A local file, relative to the spec file that names it.
    #[serde(default)]
    pub path: Option<String>,
    /// Required with `url`, optional with `path`: the archive's SHA-256.
    #[serde(default)]
    pub sha256: Option<Sha256>,
    /// Optional. The archive's size in bytes, checked while downloading.
    #[serde(default)]
    pub size: Option<u64>,
    /// Optional. Directory in the image to unpack into. Default: `/`.
    #[serde(default)]
    pub into: Option<ImagePath>,
    /// Optional. Leading path components to drop from member names. Default: 0.
    #[serde(default)]
    pub strip_components: u32,
    /// Optional. Force every entry's owner, `"uid:gid"`. Default: keep the
    /// archive's numeric owners.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Users and groups.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountsSpec {
    /// Optional. Add `root` (uid 0) and `nogroup`/`nobody` (65534). Default: true.
    #[serde(default = "yes")]
    pub system: bool,
    /// Optional. Groups.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// Optional. Users.
    #[serde(default)]
    pub users: Vec<UserSpec>,
}

fn yes() -> bool {
    true
}

/// A group.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Required. Group name.
    pub name: String,
    /// Required. Numeric id.
    pub gid: u32,
    /// Optional. Supplementary members (user names).
    #[serde(default)]
    pub members: Vec<String>,
}

/// A user.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Required. User name.
    pub name: String,
    /// Required. Numeric id.
    pub uid: u32,
    /// Optional. Primary group id. Default: same as `uid`.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Optional. Home directory; created owned by the user. Default: `/home/<name>`
    /// (`/root` for uid 0).
    #[serde(default)]
    pub home: Option<ImagePath>,
    /// Optional. Login shell. Default: `/usr/sbin/nologin`.
    #[serde(default)]
    pub shell: Option<String>,
    /// Optional. Full name field.
    #[serde(default)]
    pub gecos: Option<String>,
}

/// Which GPU stack the image targets.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Required. CUDA version of the image's libraries, e.g. `"12.8"`. The
    /// build checks it against the CUDA wheels (`nvidia-cuda-runtime-cu12`,
    /// torch's pins) and records the minimum driver as a label.
    pub cuda: String,
    /// Optional. Allowed compute capabilities. Default: `[sm_80, sm_90]`.
    #[serde(default)]
    pub arch: Option<Vec<String>>,
    /// Optional. Start-up check policy baked into the image as `STRATA_VERIFY`:
    /// `quick`, `full`, `warn` (report, never block) or `off` (no verifier is
    /// added). Default: `quick`.
    #[serde(default)]
    pub verify: Option<String>,
    /// Optional. Set `NVIDIA_REQUIRE_CUDA=cuda>=<cuda>` so the NVIDIA container
    /// toolkit refuses to start the image on an older driver. Default: false.
    #[serde(default)]
    pub require_cuda_env: bool,
}

/// How a precompiled `.pyc` is checked against its source at import time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Invalidation {
    /// The `.pyc` holds a hash of its source; Python hashes the source at
    /// each import and recompiles (in memory, when it cannot write) if it
    /// changed. Safe when sources are edited in a container.
    #[default]
    CheckedHash,
    /// The `.pyc` is used without looking at its source (fastest; an edited
    /// source is ignored until its `.pyc` is removed).
    UncheckedHash,
}

impl Invalidation {
    /// The spelling in specs (`checked-hash`).
    pub fn as_str(self) -> &'static str {
        match self {
            Invalidation::CheckedHash => "checked-hash",
            Invalidation::UncheckedHash => "unchecked-hash",
        }
    }
}

/// Precompiled bytecode for the layers below.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BytecodeSpec {
    /// Optional. `checked-hash` (default) or `unchecked-hash`; timestamp-based
    /// `.pyc` files are never made (they would depend on file times).
    #[serde(default)]
    pub invalidation: Invalidation,
    /// Optional. The interpreter in the image that compiles, e.g.
    /// `/usr/bin/python3.11` (default: the only `/usr/bin/python3.N` of the
    /// layers below).
    #[serde(default)]
    pub python: Option<ImagePath>,
}

/// Python wheels from a PEP 751 lock file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonSpec {
    /// Required. The lock file (`pylock.toml` or `pylock.<name>.toml`), relative
    /// to this file. It pins every wheel by URL (or path), size and sha256;
    /// `strata lock` writes it from `requirements`, or bring your own.
    pub lock: String,
    /// Optional. Top-level requirements (PEP 508) that `strata lock` resolves
    /// with uv. Their packages also get a `REQUESTED` file.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Optional (required by `strata lock`). Resolve as of this time
    /// (`uv --exclude-newer`): RFC 3339 (`2026-11-01T00:00:00Z`) or a date.
    #[serde(default)]
    pub exclude_newer: Option<String>,
    /// Optional. Package index for `strata lock`. Default: PyPI.
    #[serde(default)]
    pub index_url: Option<String>,
    /// Optional. Extras that the lock's `'x' in extras` markers see.
    #[serde(default)]
    pub extras: Vec<String>,
    /// Optional. How the wheels are split into layers.
    #[serde(default)]
    pub split: Option<PythonSplitSpec>,
    /// Optional. The image's interpreter and platform, which choose the
    /// wheels, evaluate markers and place files. Default: Debian bookworm's
    /// CPython 3.11.2, manylinux_2_28, x86_64.
    #[serde(default)]
    pub target: Option<PythonTargetSpec>,
}

/// The interpreter a `python:` source installs for.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonTargetSpec {
    /// Required. The image's CPython version, in full (`3.12.3`): the minor
    /// version picks wheels and `/usr/local/lib/python3.X/dist-packages`,
    /// the full one is what `python_full_version` markers see.
    pub python: CPythonVersion,
    /// Optional. The newest `manylinux_2_N` wheels may target: the glibc
    /// of the image (`2.36`) or lower. Default: `2.28`.
    #[serde(default)]
    pub glibc: Option<GlibcVersion>,
}

/// A CPython version `3.MINOR.MICRO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CPythonVersion(pub u32, pub u32, pub u32);

impl<'de> Deserialize<'de> for CPythonVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n: Vec<Option<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
        match n.as_slice() {
            [Some(3), Some(mi), Some(mc)] if (6..100).contains(mi) => Ok(CPythonVersion(3, *mi, *mc)),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not a CPython 3 version in full, such as `3.12.3` (the image's `python3 --version`)"
            ))),
        }
    }
}

/// A glibc version `2.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GlibcVersion(pub u32, pub u32);

impl<'de> Deserialize<'de> for GlibcVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.split_once('.').map(|(a, b)| (a.parse::<u32>(), b.parse::<u32>())) {
            Some((Ok(2), Ok(n))) => Ok(GlibcVersion(2, n)),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not a glibc version such as `2.36` (the image's `ldd --version`)"
            ))),
        }
    }
}

string_schema!(CPythonVersion, "CPythonVersion", {"type": "string", "pattern": "^3\\.[0-9]{1,2}\\.[0-9]+$", "description": "CPython version in full, e.g. \"3.12.3\"."});
string_schema!(GlibcVersion, "GlibcVersion", {"type": "string", "pattern": "^2\\.[0-9]+$", "description": "glibc version, e.g. \"2.36\"."});

/// How a `python:` source splits its wheels into layers.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonSplitSpec {
    /// Optional. Wheels at least this large (bytes) get a layer each.
    /// Default: 33554432 (32 MiB).
    #[serde(default)]
    pub own_layer_min_bytes: Option<u64>,
    /// Optional. Buckets for the other wheels (chosen by a hash of the
    /// package name). Default: 8.
    #[serde(default)]
    pub groups: Option<u32>,
    /// Optional. Most layers this source makes, 1-127. Default: 32.
    #[serde(default)]
    pub max_layers: Option<u32>,
}

/// Runtime configuration written into the image config.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Optional. `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default)]
    pub user: Option<String>,
    /// Optional. Working directory (absolute).
    #[serde(default)]
    pub workdir: Option<ImagePath>,
    /// Optional. Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Optional. Entrypoint argv.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Optional. Default arguments (or command when there is no entrypoint).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Optional. Exposed ports, `8888/tcp` or `53/udp` (`/tcp` may be omitted).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Optional. Volume mount points.
    #[serde(default)]
    pub volumes: Vec<ImagePath>,
    /// Optional. Config labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Optional. Signal that stops the container, e.g. `SIGTERM`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Optional. How a runtime checks that a container works (Docker's
    /// `HEALTHCHECK`), kept in the image config's `Healthcheck`.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckSpec>,
}

/// A container health check.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckSpec {
    /// Required. The check: a list is a command run without a shell
    /// (`[curl, -f, "http://localhost:8888/"]`), a string is run with
    /// `/bin/sh -c`; `[NONE]` turns off a check the image would inherit.
    /// A list may also start with `CMD` or `CMD-SHELL` as Docker writes it.
    pub test: HealthTest,
    /// Optional. Time between checks, e.g. `30s` (ms, s, m, h). Runtime default: 30s.
    #[serde(default)]
    pub interval: Option<String>,
    /// Optional. Time a check may take before it counts as failed. Runtime default: 30s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Optional. Start-up time during which failures do not count. Runtime default: 0s.
    #[serde(default)]
    pub start_period: Option<String>,
    /// Optional. Time between checks during the start period. Runtime default: 5s.
    #[serde(default)]
    pub start_interval: Option<String>,
    /// Optional. Consecutive failures that make the container unhealthy. Runtime default: 3.
    #[serde(default)]
    pub retries: Option<u32>,
}

/// A health check command: a string for the shell, or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HealthTest {
    /// Run with `/bin/sh -c` (Docker's `CMD-SHELL`).
    Shell(String),
    /// Run as is (Docker's `CMD`), or `[NONE]`.
    Exec(Vec<String>),
}

impl<'de> Deserialize<'de> for HealthTest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HealthTest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command: a list of strings, or one string for the shell")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HealthTest, E> {
                Ok(HealthTest::Shell(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<HealthTest, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element::<serde_norway::Value>()? {
                    match item {
                        serde_norway::Value::String(s) => v.push(s),
                        other => {
                            let shown = serde_norway::to_string(&other).unwrap_or_default();
                            return Err(serde::de::Error::custom(format!(
                                "`test` item {} is `{}`, not a string: quote it (`\"{}\"`), as YAML reads bare true, false and numbers as other types",
                                v.len(),
                                shown.trim(),
                                shown.trim()
                            )));
                        }
                    }
                }
                Ok(HealthTest::Exec(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl HealthTest {
    /// The `Test` array of an image config: `["CMD", argv…]`,
    /// `["CMD-SHELL", command]` or `["NONE"]`.
    pub fn to_config(&self) -> Vec<String> {
        match self {
            HealthTest::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            HealthTest::Exec(v) => match v.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL" | "NONE") => v.clone(),
                _ => std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect(),
            },
        }
    }
}

/// Debian packages for one layer. `strata lock` resolves `packages` with
/// their dependencies against the archives and pins every `.deb` in the lock
/// file; `strata build` installs exactly the pinned set.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DebsSpec {
    /// Required. Packages to install, each a Debian relation: a name
    /// (`tzdata`), optionally with a version constraint (`libc6 (>= 2.36)`)
    /// or alternatives (`mawk | gawk`). Their Pre-Depends and Depends are
    /// added by `strata lock`.
    pub packages: Vec<DebRelation>,
    /// Optional. Package names never installed, even when a dependency asks
    /// for them (e.g. `debconf`, `readline-common`). A dependency whose
    /// alternatives are all excluded is skipped and noted in the lock.
    #[serde(default)]
    pub exclude: Vec<DebName>,
    /// Optional. Provider preferences for virtual packages, e.g.
    /// `{awk: mawk}`. Without one, the provider with the highest priority
    /// (required, important, standard, optional, extra), then the smallest
    /// name, is chosen.
    #[serde(default)]
    pub prefer: BTreeMap<String, DebName>,
    /// Optional. Where packages come from, searched together (the highest
    /// version that satisfies a relation wins). Default: Debian bookworm
    /// (`http://deb.debian.org/debian`, suites `bookworm`, `bookworm-updates`)
    /// and bookworm-security (`http://deb.debian.org/debian-security`,
    /// suite `bookworm-security`, optional).
    #[serde(default)]
    pub archives: Option<Vec<DebArchive>>,
    /// Optional. Debian architecture; it must be the image platform's
    /// (`amd64` for `linux/amd64`, `arm64` for `linux/arm64`). Default: the
    /// platform's.
    #[serde(default)]
    pub arch: Option<String>,
    /// Optional. OpenPGP keyring (binary or armored) that signs the
    /// archives' `InRelease` files, relative to this file. Default: the
    /// Debian archive keyring shipped with strata (`keys/debian-archive-keyring.gpg`).
    #[serde(default)]
    pub keyring: Option<String>,
    /// Optional. Move `/bin`, `/sbin`, `/lib*` into `/usr` and link them
    /// (Debian's merged-/usr layout). Default: true.
    #[serde(default)]
    pub merged_usr: Option<bool>,
    /// Optional. Add the declarative stand-ins for maintainer scripts
    /// (CA bundle, ld.so.cache, /tmp, python dist-packages, ...). Default: true.
    #[serde(default)]
    pub standins: Option<bool>,
}

/// The Debian archive `debs:` entries use when they name none.
pub const DEFAULT_ARCHIVE: &str = "https://deb.debian.org/debian";
/// Its security companion.
pub const DEFAULT_SECURITY_ARCHIVE: &str = "https://deb.debian.org/debian-security";
/// The architecture `debs:` entries use when they name none.
pub const DEFAULT_ARCH: &str = "amd64";

impl DebsSpec {
    /// The archives (bookworm and its security archive unless `archives:` names others).
    pub fn archives(&self) -> Vec<DebArchive> {
        match &self.archives {
            Some(a) => a.clone(),
            None => vec![
                DebArchive {
                    url: ArchiveUrl(DEFAULT_ARCHIVE.into()),
                    suites: vec!["bookworm".into(), "bookworm-updates".into()],
                    components: vec!["main".into()],
                    optional: false,
                },
                DebArchive {
                    url: ArchiveUrl(DEFAULT_SECURITY_ARCHIVE.into()),
                    suites: vec!["bookworm-security".into()],
                    components: vec!["main".into()],
                    optional: true,
                },
            ],
        }
    }

    /// The architecture.
    pub fn arch(&self) -> String {
        self.arch.clone().unwrap_or_else(|| DEFAULT_ARCH.to_string())
    }
}

/// One Debian archive.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DebArchive {
    /// Required. Archive root URL (the directory holding `dists/` and `pool/`),
    /// e.g. `http://deb.debian.org/debian`.
    pub url: ArchiveUrl,
    /// Required. Suites (distributions), e.g. `[bookworm, bookworm-updates]`.
    pub suites: Vec<String>,
    /// Optional. Components. Default: `[main]`.
    #[serde(default)]
    pub components: Vec<String>,
    /// Optional. When true, `strata lock` skips this archive with a warning
    /// if it cannot be reached. Default: false.
    #[serde(default)]
    pub optional: bool,
}

/// A Debian relation as written in `packages:` (`name`, `name (>= 1.0)`, `a | b`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebRelation(pub String);

impl<'de> Deserialize<'de> for DebRelation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let groups = crate::sources::deb::control::parse_relations(&s).map_err(serde::de::Error::custom)?;
        if groups.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "`{s}` must be one package relation (write one list item per package, not a comma-separated list)"
            )));
        }
        Ok(DebRelation(s))
    }
}

/// A Debian package name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DebName(pub String);

impl<'de> Deserialize<'de> for DebName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.len() >= 2
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`)"
            )));
        }
        Ok(DebName(s))
    }
}

/// An `http://` or `https://` URL without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveUrl(pub String);

impl<'de> Deserialize<'de> for ArchiveUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !(s.starts_with("http://") || s.starts_with("https://")) || url::Url::parse(&s).is_err() {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an http(s) archive URL such as `http://deb.debian.org/debian`"
            )));
        }
        Ok(ArchiveUrl(s.trim_end_matches('/').to_string()))
    }
}

string_schema!(DebRelation, "DebRelation", {"type": "string", "description": "Debian relation: `name`, `name (>= version)`, or alternatives `a | b`."});
string_schema!(DebName, "DebName", {"type": "string", "pattern": "^[a-z0-9][a-z0-9+.-]+$", "description": "Debian package name."});
string_schema!(ArchiveUrl, "ArchiveUrl", {"type": "string", "pattern": "^https?://", "description": "Debian archive root URL."});
