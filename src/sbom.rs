//! Software bill of materials: an SPDX 2.3 JSON document listing every
//! package an image was built from (Debian packages, Python wheels, tarballs,
//! the verifier) with its version, purl, the artifact's sha256 and the layer
//! it went into.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest::Digest;

/// Media type of SPDX JSON documents (artifact type and layer media type).
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// Media type (and artifact type) of the CycloneDX JSON SBOM.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Which SBOM format a build attaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

/// True for the media types of SBOM documents (SPDX or CycloneDX JSON).
pub fn is_sbom(media_type: Option<&str>) -> bool {
    matches!(media_type, Some(SPDX_MEDIA_TYPE) | Some(CYCLONEDX_MEDIA_TYPE))
}

impl SbomFormat {
    /// The media type of the document.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => SPDX_MEDIA_TYPE,
            SbomFormat::Cyclonedx => CYCLONEDX_MEDIA_TYPE,
        }
    }
}

/// What kind of artifact a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// A Debian package.
    Deb,
    /// A Python wheel.
    Wheel,
    /// A tar archive.
    Tarball,
    /// A single file (e.g. the verifier binary).
    File,
}

/// One package for the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Kind.
    pub kind: PackageKind,
    /// Name.
    pub name: String,
    /// Version, when known.
    pub version: Option<String>,
    /// Package URL (`pkg:deb/debian/…`, `pkg:pypi/…`, `pkg:generic/…`).
    pub purl: Option<String>,
    /// SHA-256 of the artifact (the .deb, the wheel, the tarball).
    pub sha256: Option<Digest>,
    /// Where it was downloaded from (credentials redacted).
    pub download: Option<String>,
    /// Declared license, when the artifact says.
    pub license: Option<String>,
}

impl Package {
    /// A tarball artifact.
    pub fn tarball(url: Option<&str>, file_name: &str, sha256: Option<Digest>) -> Package {
        let mut purl = format!("pkg:generic/{}", purl_escape(file_name));
        let mut q = Vec::new();
        if let Some(u) = url {
            q.push(format!("download_url={}", purl_escape(&crate::net::redact::url(u))));
        }
        if let Some(d) = sha256 {
            q.push(format!("checksum=sha256:{}", d.hex()));
        }
        if !q.is_empty() {
            purl.push('?');
            purl.push_str(&q.join("&"));
        }
        Package {
            kind: PackageKind::Tarball,
            name: file_name.to_string(),
            version: None,
            purl: Some(purl),
            sha256,
            download: url.map(crate::net::redact::url),
            license: None,
        }
    }
}

/// Percent-encodes what a purl component may not contain.
pub fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A layer and the packages in it.
#[derive(Debug, Clone)]
pub struct LayerPackages {
    /// 1-based position.
    pub index: usize,
    /// Layer name.
    pub name: String,
    /// Layer digest.
    pub digest: Digest,
    /// Packages.
    pub packages: Vec<Package>,
}

fn spdx_id(kind: PackageKind, name: &str, n: usize) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    let kind = match kind {
        PackageKind::Deb => "deb",
        PackageKind::Wheel => "wheel",
        PackageKind::Tarball => "tarball",
        PackageKind::File => "file",
    };
    format!("SPDXRef-Package-{kind}-{clean}-{n}")
}

/// The SPDX 2.3 document for an image (deterministic: no clock, sorted).
pub fn spdx(image_name: &str, tag: &str, manifest: &Digest, epoch: u64, layers: &[LayerPackages]) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": image_name,
        "versionInfo": tag,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": manifest.hex()}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/{}@sha256%3A{}?tag={}", purl_escape(image_name), manifest.hex(), purl_escape(tag)),
        }],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    })];
    let mut relationships = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}),
    ];
    let mut n = 0;
    for l in layers {
        let mut sorted = l.packages.clone();
        sorted.sort_by(|a, b| (a.kind as u8, &a.name, &a.version).cmp(&(b.kind as u8, &b.name, &b.version)));
        for p in sorted {
            n += 1;
            let id = spdx_id(p.kind, &p.name, n);
            let mut pkg = json!({
                "SPDXID": id,
                "name": p.name,
                "downloadLocation": p.download.clone().unwrap_or_else(|| "NOASSERTION".into()),
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": p.license.clone().unwrap_or_else(|| "NOASSERTION".into()),
                "copyrightText": "NOASSERTION",
                "comment": format!("layer {} ({}) {}", l.index, l.name, l.digest),
            });
            if let Some(v) = &p.version {
                pkg["versionInfo"] = json!(v);
            }
            if let Some(d) = &p.sha256 {
                pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": d.hex()}]);
            }
            if let Some(purl) = &p.purl {
                pkg["externalRefs"] = json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}]);
            }
            packages.push(pkg);
            relationships.push(
                json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}),
            );
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{image_name}:{tag}"),
        "documentNamespace": format!("https://spdx.org/spdxdocs/strata/{}-{}", purl_escape(image_name), manifest.hex()),
        "creationInfo": {
            "created": crate::oci::rfc3339(epoch),
            "creators": [concat!("Tool: strata-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// The CycloneDX 1.6 document for an image (deterministic: no clock, sorted;
/// the serial number is derived from the manifest digest).
pub fn cyclonedx(image_name: &str, tag: &str, manifest: &Digest, epoch: u64, layers: &[LayerPackages]) -> Value {
    let h = manifest.hex();
    let serial = format!("urn:uuid:{}-{}-5{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32]);
    let mut components = Vec::new();
    let mut refs = Vec::new();
    let mut n = 0;
    for l in layers {
        let mut sorted = l.packages.clone();
        sorted.sort_by(|a, b| (a.kind as u8, &a.name, &a.version).cmp(&(b.kind as u8, &b.name, &b.version)));
        for p in sorted {
            n += 1;
            let bom_ref = spdx_id(p.kind, &p.name, n).replace("SPDXRef-Package-", "pkg-");
            let kind = match p.kind {
                PackageKind::Deb | PackageKind::Wheel => "library",
                PackageKind::Tarball | PackageKind::File => "file",
            };
            let mut c = json!({"type": kind, "bom-ref": bom_ref, "name": p.name});
            if let Some(v) = &p.version {
                c["version"] = json!(v);
            }
            if let Some(purl) = &p.purl {
                c["purl"] = json!(purl);
            }
            if let Some(d) = &p.sha256 {
                c["hashes"] = json!([{"alg": "SHA-256", "content": d.hex()}]);
            }
            if let Some(l) = &p.license {
                c["licenses"] = json!([{"license": {"name": l}}]);
            }
            if let Some(u) = &p.download {
                c["externalReferences"] = json!([{"type": "distribution", "url": u}]);
            }
            c["properties"] = json!([
                {"name": "dev.strata:layer", "value": format!("{} ({})", l.index, l.name)},
                {"name": "dev.strata:layer.digest", "value": l.digest.to_string()},
            ]);
            refs.push(bom_ref);
            components.push(c);
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": crate::oci::rfc3339(epoch),
            "tools": {"components": [{"type": "application", "name": "strata", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": image_name,
                "version": tag,
                "hashes": [{"alg": "SHA-256", "content": h}],
                "purl": format!("pkg:oci/{}@sha256%3A{}?tag={}", purl_escape(image_name), h, purl_escape(tag)),
            },
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": refs}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_escaping_and_tarball_purls() {
        assert_eq!(purl_escape("a b/c"), "a%20b%2Fc");
        let p = Package::tarball(Some("https://u:secret@example.org/x.tar.gz"), "x.tar.gz", Some(Digest::of(b"x")));
        let purl = p.purl.unwrap();
        assert!(purl.starts_with("pkg:generic/x.tar.gz?download_url=https%3A%2F%2F"), "{purl}");
        assert!(!purl.contains("secret"));
    }
}
