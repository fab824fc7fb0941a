//! What can go wrong with Debian archives and packages, as data: every
//! variant names the file, URL or package involved, and says what was
//! expected and what was found.

use crate::digest::{Digest, DigestParseError};
use crate::error::IoError;
use crate::net::NetError;

/// A Debian archive, index or package that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// A keyring file cannot be read (missing, not a regular file, too large).
    #[error("keyring: {source}")]
    KeyringFile {
        /// Why.
        #[source]
        source: crate::hostfs::HostPathError,
    },
    /// The keyring a `debs:` entry names is outside the build context.
    #[error("keyring: {source}")]
    KeyringPath {
        /// Why.
        #[source]
        source: crate::hostfs::HostPathError,
    },
    /// Keyring bytes that are not an OpenPGP keyring.
    #[error("{origin}: not an OpenPGP keyring: {detail}")]
    NotAKeyring {
        /// Where the keyring came from.
        origin: String,
        /// The OpenPGP parser's complaint.
        detail: String,
    },
    /// A key of a keyring cannot be read.
    #[error("{origin}: unreadable key: {detail}")]
    UnreadableKey {
        /// Where the keyring came from.
        origin: String,
        /// The OpenPGP parser's complaint.
        detail: String,
    },
    /// The keyring a `debs:` entry names cannot be used.
    #[error("keyring: {0}")]
    SpecKeyring(Box<DebError>),
    /// A keyring without keys.
    #[error("{origin}: holds no public keys")]
    EmptyKeyring {
        /// Where the keyring came from.
        origin: String,
    },
    /// An `InRelease` file that is not text.
    #[error("{url}: InRelease is not UTF-8 text")]
    NotUtf8 {
        /// The URL.
        url: String,
    },
    /// An `InRelease` file that is not clear-signed.
    #[error("{url}: not an OpenPGP clear-signed InRelease file ({detail})")]
    NotClearSigned {
        /// The URL.
        url: String,
        /// The OpenPGP parser's complaint.
        detail: String,
    },
    /// No signature verifies against the keyring.
    #[error("{url}: no valid signature by a trusted key\n  expected: a signature by a key in {keyring}\n  found:    {signatures} signature(s), issuers {}", if issuers.is_empty() { "unknown".to_string() } else { issuers.join(", ") })]
    Untrusted {
        /// The URL.
        url: String,
        /// Where the trusted keys came from.
        keyring: String,
        /// How many signatures the file has.
        signatures: usize,
        /// Their issuers' fingerprints (or key ids).
        issuers: Vec<String>,
    },
    /// A `Release` file without paragraphs.
    #[error("{url}: empty Release file")]
    EmptyRelease {
        /// The URL.
        url: String,
    },
    /// A `Release` file without SHA256 checksums.
    #[error("{url}: Release has no SHA256 field")]
    NoSha256 {
        /// The URL.
        url: String,
    },
    /// A `SHA256:` line that is not `HASH SIZE PATH`.
    #[error("{url}: malformed SHA256 line `{line}`")]
    MalformedSha256Line {
        /// The URL.
        url: String,
        /// The line.
        line: String,
    },
    /// A `SHA256:` line with a bad hash.
    #[error("{url}: SHA256 line `{line}`: {source}")]
    BadSha256 {
        /// The URL.
        url: String,
        /// The line.
        line: String,
        /// What is wrong with the hash.
        #[source]
        source: DigestParseError,
    },
    /// A `SHA256:` line with a bad size.
    #[error("{url}: SHA256 line `{line}`: bad size")]
    BadSha256Size {
        /// The URL.
        url: String,
        /// The line.
        line: String,
    },
    /// A `Release` file past its `Valid-Until`.
    #[error("{url}: the Release file expired (Valid-Until: {valid_until})")]
    Expired {
        /// The URL.
        url: String,
        /// Its `Valid-Until`.
        valid_until: String,
    },
    /// deb822 text that cannot be read.
    #[error("{what} line {line}: {source}")]
    ReadText {
        /// What the text is.
        what: String,
        /// The line number.
        line: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A continuation line before any field.
    #[error("{what} line {line}: continuation line without a field")]
    Continuation {
        /// What the text is.
        what: String,
        /// The line number.
        line: usize,
    },
    /// A line that is not `Field: value`.
    #[error("{what} line {line}: expected `Field: value`, found `{found}`")]
    NotAField {
        /// What the text is.
        what: String,
        /// The line number.
        line: usize,
        /// The line (shortened).
        found: String,
    },
    /// A field name with blanks, or none.
    #[error("{what} line {line}: `{name}` is not a field name")]
    BadFieldName {
        /// What the text is.
        what: String,
        /// The line number.
        line: usize,
        /// The name (shortened).
        name: String,
    },
    /// A version dpkg refuses.
    #[error("{}", describe_version(input, problem))]
    BadVersion {
        /// The version as written.
        input: String,
        /// What is wrong.
        problem: VersionProblem,
    },
    /// A relation with an unclosed `(`.
    #[error("relation `{input}` has an unclosed `(`")]
    UnclosedRelation {
        /// The relation as written.
        input: String,
    },
    /// A relation with an operator dpkg does not know.
    #[error("relation `{input}` has an unknown operator `{op}` (use <<, <=, =, >= or >>)")]
    UnknownOperator {
        /// The relation as written.
        input: String,
        /// The operator.
        op: String,
    },
    /// A relation whose version is bad.
    #[error("relation `{input}`: {source}")]
    RelationVersion {
        /// The relation as written.
        input: String,
        /// The version's problem.
        #[source]
        source: Box<DebError>,
    },
    /// Text that is not a relation.
    #[error("`{input}` is not a package relation like `name` or `name (>= 1.0)`")]
    NotARelation {
        /// What was written.
        input: String,
    },
    /// A Packages paragraph without a field resolution needs.
    #[error("{what}: package {package} has no `{field}` field")]
    MissingField {
        /// The index.
        what: String,
        /// The package.
        package: String,
        /// The field.
        field: &'static str,
    },
    /// A Packages paragraph with a bad field.
    #[error("{what}: package {package}: {}{source}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
    BadField {
        /// The index.
        what: String,
        /// The package.
        package: String,
        /// The field, when the cause does not name it.
        field: Option<&'static str>,
        /// What is wrong.
        #[source]
        source: Box<DebError>,
    },
    /// A Packages paragraph whose `Size:` is not a number.
    #[error("{what}: package {package}: Size is not a number")]
    BadSize {
        /// The index.
        what: String,
        /// The package.
        package: String,
    },
    /// A Packages paragraph with a bad SHA256.
    #[error("{what}: package {package}: SHA256: {source}")]
    BadPackageDigest {
        /// The index.
        what: String,
        /// The package.
        package: String,
        /// What is wrong.
        #[source]
        source: DigestParseError,
    },
    /// A `Filename:` outside the archive.
    #[error("{what}: package {package}: Filename `{filename}` escapes the archive root")]
    EscapingFilename {
        /// The index.
        what: String,
        /// The package.
        package: String,
        /// The filename.
        filename: String,
    },
    /// A chosen package's relations do not parse.
    #[error("package {package} {version}: {field}: {source}")]
    PackageRelations {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// `Depends`, `Conflicts`, `Breaks`.
        field: &'static str,
        /// What is wrong.
        #[source]
        source: Box<DebError>,
    },
    /// A `prefer:` for a name nothing provides.
    #[error("`prefer: {{{name}: {provider}}}`: no package in the archives provides `{name}`")]
    UnknownPreference {
        /// The virtual name.
        name: String,
        /// The preferred provider.
        provider: String,
    },
    /// A `prefer:` naming a package that does not provide the relation.
    #[error("`prefer: {{{name}: {provider}}}`, but {provider} does not provide `{relation}` here\n  providers: {}", providers.join(", "))]
    NotAProvider {
        /// The virtual name.
        name: String,
        /// The preferred provider.
        provider: String,
        /// The relation being resolved.
        relation: String,
        /// The providers there are.
        providers: Vec<String>,
    },
    /// No package satisfies a relation.
    #[error("cannot satisfy `{relation}` ({needed})\n  {}", tried.join("\n  "))]
    Unsatisfiable {
        /// The relation (alternatives joined by `|`).
        relation: String,
        /// Who needs it.
        needed: String,
        /// Why each alternative failed.
        tried: Vec<String>,
    },
    /// A package a layer below installs is not among the candidates.
    #[error("{name} {version}, installed by layer `{layer}` below, is not in this layer's archives")]
    InstalledBelowUnknown {
        /// Package.
        name: String,
        /// Its pinned version.
        version: String,
        /// The layer below.
        layer: String,
    },
    /// Two chosen packages conflict.
    #[error("{a} {a_version} and {b} {b_version} cannot be installed together: {a} {a_version} declares `{field}: {relation}`\n  {a} is {a_needed}\n  {b} is {b_needed}")]
    Conflict {
        /// The package that declares the conflict.
        a: String,
        /// Its version.
        a_version: String,
        /// The one it conflicts with.
        b: String,
        /// Its version.
        b_version: String,
        /// `Conflicts` or `Breaks`.
        field: &'static str,
        /// The declared relation.
        relation: String,
        /// Why `a` was chosen.
        a_needed: String,
        /// Why `b` was chosen.
        b_needed: String,
    },
    /// A download failed.
    #[error("{source}")]
    Download {
        /// What failed.
        #[source]
        source: NetError,
        /// What to do.
        hint: String,
    },
    /// A suite's `InRelease` does not list the Packages index.
    #[error("{archive}/dists/{suite}/InRelease lists no {base}(.xz|.gz)")]
    NoIndex {
        /// The archive URL.
        archive: String,
        /// The suite.
        suite: String,
        /// `main/binary-amd64/Packages`.
        base: String,
    },
    /// A Packages index that does not match the signed Release.
    #[error("{url}: the Packages index does not match the signed Release\n  expected: {expected} ({expected_size} bytes)\n  found:    {found} ({found_size} bytes)")]
    IndexMismatch {
        /// The URL.
        url: String,
        /// The digest Release names.
        expected: Digest,
        /// The size Release names.
        expected_size: u64,
        /// What arrived.
        found: Digest,
        /// Its size.
        found_size: u64,
    },
    /// No archive had any package.
    #[error("no packages found in any archive")]
    NoPackages,
    /// Offline: an `InRelease` is neither in the cache nor in a mirror.
    #[error("offline: {url} is not in the cache or any mirror{}", recorded.as_ref().map(|h| format!(" (the lock recorded sha256:{h})")).unwrap_or_default())]
    OfflineInRelease {
        /// Its URL.
        url: String,
        /// The sha256 the lock recorded for it, if any.
        recorded: Option<String>,
    },
    /// Offline: a Packages index is neither in the cache nor in a mirror.
    #[error("offline: the Packages index {url} ({digest}) is not in the cache or any mirror")]
    OfflineIndex {
        /// Its URL.
        url: String,
        /// The digest the signed Release names.
        digest: Digest,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A local file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A compressed index cannot be read.
    #[error(transparent)]
    Archive(Box<super::super::SourceError>),
}

impl crate::error::Hint for DebError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            DebError::SpecKeyring(_) => "`keyring:` is relative to the file that names it".into(),
            DebError::KeyringPath { source } => source.hint().into(),
            DebError::NotClearSigned { .. } => "check that the URL is a Debian archive root (it must have dists/SUITE/InRelease)".into(),
            DebError::Untrusted { .. } => "the file was altered, or the archive is signed by a key that is not trusted; give the archive's keyring with `keyring:` in the `debs:` entry".into(),
            DebError::NoSha256 { .. } => "strata needs SHA256 index checksums (MD5Sum/SHA1 alone are not trusted)".into(),
            DebError::Expired { .. } => "the mirror is stale (or the clock is wrong); use an up-to-date mirror".into(),
            DebError::UnknownPreference { .. } => "check the spelling, or remove the preference".into(),
            DebError::NotAProvider { .. } => "prefer one of the providers listed".into(),
            DebError::Unsatisfiable { .. } => "relax the version constraint, add an archive or suite that has it, or `exclude:` it if the image works without it".into(),
            DebError::Conflict { .. } => "`exclude:` the one the image can do without, or pin versions that do not clash".into(),
            DebError::Download { hint, .. } => hint.clone(),
            DebError::NoIndex { .. } => "check the component (`components:`) and architecture (`arch:`)".into(),
            DebError::IndexMismatch { .. } => "the mirror is being updated or is corrupt; retry later or use another mirror".into(),
            DebError::NoPackages => "check `archives:`, `arch:` and the network".into(),
            DebError::OfflineInRelease { .. } | DebError::OfflineIndex { .. } => "on a connected machine run `strata fetch SPEC --into MIRROR` (it adds the archive indexes) and pass `--mirror MIRROR`, or lock online".into(),
            _ => return None,
        })
    }
}

/// What is wrong with a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionProblem {
    /// Nothing at all.
    Empty,
    /// Blanks inside.
    Whitespace,
    /// An epoch that is not a number.
    NonNumericEpoch,
    /// `-` at the end.
    EmptyRevision,
    /// Nothing before the revision.
    EmptyUpstream,
    /// Characters outside dpkg's set.
    BadCharacters,
}

fn describe_version(input: &str, p: &VersionProblem) -> String {
    match p {
        VersionProblem::Empty => "empty version".into(),
        VersionProblem::Whitespace => format!("version `{input}` contains whitespace"),
        VersionProblem::NonNumericEpoch => {
            let e = input.split_once(':').map(|(e, _)| e).unwrap_or("");
            format!("version `{input}` has a non-numeric epoch `{e}`")
        }
        VersionProblem::EmptyRevision => format!("version `{input}` has an empty revision after `-`"),
        VersionProblem::EmptyUpstream => format!("version `{input}` has an empty upstream part"),
        VersionProblem::BadCharacters => format!("version `{input}` contains characters dpkg does not allow"),
    }
}
