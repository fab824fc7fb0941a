//! Dependency resolution over a Packages index: breadth-first from the
//! requested packages over Pre-Depends and Depends, alternatives tried in
//! order, virtual packages through Provides, versions compared as dpkg does,
//! excluded names never installed. No backtracking: the first satisfiable
//! alternative wins, which is what apt does for a fresh install and keeps the
//! result easy to predict. Conflicts and Breaks are checked on the result:
//! a chosen package that conflicts with (or breaks) another chosen one is an
//! error that names both and why each was chosen.
//!
//! A relock passes the versions the lock already pins as preferences
//! ([`Request::locked`]): a relation that a locked version still satisfies
//! gets that version (and an alternative or provider that was chosen before
//! is chosen again), so adding a package adds it and what it needs and
//! moves nothing else.
//!
//! A `debs:` entry above another one resolves against what the entries
//! below already install ([`Request::installed`]): those packages satisfy
//! relations at their pinned versions, their `Conflicts` and `Breaks` still
//! count, and they are not installed a second time.

use super::error::DebError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::digest::Digest;

use super::control::{parse_relations, Alternatives, Paragraph, Relation};
use super::version::{Op, Version};

/// One installable package version from an index.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Architecture (`all` or the target).
    pub arch: String,
    /// Priority rank: 0 required, 1 important, 2 standard, 3 optional, 4 extra/other.
    pub priority: u8,
    /// `Pre-Depends` then `Depends`, unparsed.
    pub depends: String,
    /// `Conflicts`, unparsed (checked on the resolution, see `check_conflicts`).
    pub conflicts: String,
    /// `Breaks`, unparsed, checked like `conflicts`.
    pub breaks: String,
    /// Parsed `Provides`.
    pub provides: Vec<Relation>,
    /// Pool path.
    pub filename: String,
    /// Size of the .deb.
    pub size: u64,
    /// sha256 of the .deb.
    pub sha256: Digest,
    /// Index of the archive it came from.
    pub archive: usize,
}

impl Candidate {
    /// Builds a candidate from a Packages paragraph; `None` for other
    /// architectures. `what` names the index in errors.
    pub fn from_paragraph(
        p: &Paragraph,
        arch: &str,
        archive: usize,
        what: &str,
    ) -> Result<Option<Candidate>, DebError> {
        let field = |k: &'static str| {
            p.get(k).ok_or_else(|| DebError::MissingField {
                what: what.to_string(),
                package: p.get("Package").unwrap_or("?").to_string(),
                field: k,
            })
        };
        let a = field("Architecture")?;
        if a != arch && a != "all" {
            return Ok(None);
        }
        let name = field("Package")?.to_string();
        let bad =
            |field, e| DebError::BadField { what: what.to_string(), package: name.clone(), field, source: Box::new(e) };
        let version = Version::parse(field("Version")?).map_err(|e| bad(None, e))?;
        let mut depends = String::new();
        for k in ["Pre-Depends", "Depends"] {
            if let Some(d) = p.get(k) {
                if !depends.is_empty() {
                    depends.push_str(", ");
                }
                depends.push_str(d);
            }
        }
        let conflicts = p.get("Conflicts").unwrap_or("").to_string();
        let breaks = p.get("Breaks").unwrap_or("").to_string();
        let provides = match p.get("Provides") {
            Some(s) => parse_relations(s).map_err(|e| bad(Some("Provides"), e))?.into_iter().flatten().collect(),
            None => Vec::new(),
        };
        let priority = match p.get("Priority").unwrap_or("") {
            "required" => 0,
            "important" => 1,
            "standard" => 2,
            "optional" => 3,
            _ => 4,
        };
        let sha256 = Digest::parse(field("SHA256")?).map_err(|source| DebError::BadPackageDigest {
            what: what.to_string(),
            package: name.clone(),
            source,
        })?;
        let size = field("Size")?
            .parse::<u64>()
            .map_err(|_| DebError::BadSize { what: what.to_string(), package: name.clone() })?;
        let filename = field("Filename")?.to_string();
        if filename.starts_with('/') || filename.split('/').any(|c| c == "..") {
            return Err(DebError::EscapingFilename { what: what.to_string(), package: name, filename });
        }
        Ok(Some(Candidate {
            name,
            version,
            arch: a.to_string(),
            priority,
            depends,
            conflicts,
            breaks,
            provides,
            filename,
            size,
            sha256,
            archive,
        }))
    }
}

/// All candidates of the configured archives.
#[derive(Debug, Default)]
pub struct Universe {
    by_name: BTreeMap<String, Vec<Candidate>>,
    providers: BTreeMap<String, Vec<(String, Version)>>,
}

impl Universe {
    /// Adds a candidate; an identical name+version already present (from an
    /// earlier archive or suite) is kept instead.
    pub fn add(&mut self, c: Candidate) {
        let list = self.by_name.entry(c.name.clone()).or_default();
        if list.iter().any(|x| x.version == c.version) {
            return;
        }
        for p in &c.provides {
            self.providers.entry(p.name.clone()).or_default().push((c.name.clone(), c.version.clone()));
        }
        list.push(c);
    }

    /// Number of package versions.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Makes sure `name` at `version` is known, for a package a layer below
    /// installs that the archives no longer list (superseded since it was
    /// pinned): it is added without relations, so it satisfies requests for
    /// its own name and version only.
    pub fn ensure_installed(&mut self, name: &str, version: &Version, arch: &str) {
        if self.by_name.get(name).is_some_and(|l| l.iter().any(|c| &c.version == version)) {
            return;
        }
        self.add(Candidate {
            name: name.to_string(),
            version: version.clone(),
            arch: arch.to_string(),
            priority: 4,
            depends: String::new(),
            conflicts: String::new(),
            breaks: String::new(),
            provides: Vec::new(),
            filename: String::new(),
            size: 0,
            sha256: Digest::of(b""),
            archive: 0,
        });
    }
}

/// What to resolve.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// Root relations (each a group of alternatives).
    pub roots: Vec<Alternatives>,
    /// Names never installed.
    pub exclude: BTreeSet<String>,
    /// Virtual name → preferred provider.
    pub prefer: BTreeMap<String, String>,
    /// Versions to keep when they still satisfy the relations (the pins of
    /// the lock being refreshed), by package name.
    pub locked: BTreeMap<String, Version>,
    /// Packages that layers below already install: name → (version, the
    /// layer's name). They satisfy relations at that version and are left
    /// out of the result; a relation they do not satisfy is an error (no
    /// package is installed twice).
    pub installed: BTreeMap<String, (Version, String)>,
}

/// The result: chosen packages by name, plus notes for the lock file.
#[derive(Debug)]
pub struct Resolution<'u> {
    /// Chosen candidates, sorted by name.
    pub packages: BTreeMap<String, &'u Candidate>,
    /// Excluded dependencies and provider choices.
    pub notes: Vec<String>,
}

fn group_text(g: &[Relation]) -> String {
    g.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" | ")
}

/// Resolves a request. Errors name the relation, who needs it, what the
/// archive has, and how to fix it.
pub fn resolve<'u>(u: &'u Universe, req: &Request) -> Result<Resolution<'u>, DebError> {
    let mut chosen: BTreeMap<String, &'u Candidate> = BTreeMap::new();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut queue: VecDeque<(Alternatives, String)> =
        req.roots.iter().map(|g| (g.clone(), "the spec".to_string())).collect();
    for (virt, prov) in &req.prefer {
        if !u.providers.get(virt).is_some_and(|ps| ps.iter().any(|(n, _)| n == prov)) && !u.by_name.contains_key(virt) {
            return Err(DebError::UnknownPreference { name: virt.clone(), provider: prov.clone() });
        }
    }
    for (name, (version, layer)) in &req.installed {
        let Some(c) = u.by_name.get(name).and_then(|l| l.iter().find(|c| &c.version == version)) else {
            return Err(DebError::InstalledBelowUnknown {
                name: name.clone(),
                version: version.to_string(),
                layer: layer.clone(),
            });
        };
        why.insert(name.clone(), format!("installed by layer `{layer}` below"));
        chosen.insert(name.clone(), c);
    }
    while let Some((group, by)) = queue.pop_front() {
        if group.iter().any(|r| satisfied(u, &chosen, r)) {
            continue;
        }
        let usable: Vec<&Relation> = group.iter().filter(|r| !req.exclude.contains(&r.name)).collect();
        if usable.is_empty() {
            notes.push(format!("excluded: {} (needed by {by})", group_text(&group)));
            continue;
        }
        // An alternative the lock already chose, still available, wins.
        let mut pick: Option<&'u Candidate> = usable.iter().find_map(|r| locked_real(u, &chosen, req, r));
        let mut tried = Vec::new();
        let mut excluded_providers = 0;
        for r in usable.iter().filter(|_| pick.is_none()) {
            match best_real(u, &chosen, req, r) {
                Ok(Some(c)) => {
                    pick = Some(c);
                    break;
                }
                Ok(None) => {}
                Err(AlreadyChosen(why_not)) => {
                    tried.push(why_not);
                    continue;
                }
            }
            match provider(u, &chosen, req, r)? {
                Some((c, note)) => {
                    if let Some(n) = note {
                        notes.push(n);
                    }
                    pick = Some(c);
                    break;
                }
                None => {
                    if only_excluded_providers(u, req, r) {
                        excluded_providers += 1;
                    }
                    tried.push(describe_missing(u, r));
                }
            }
        }
        if pick.is_none() && (excluded_providers > 0 || usable.len() < group.len()) {
            // Nothing installable is left once the excluded names are taken out.
            notes.push(format!(
                "excluded: {} (needed by {by}; every installable alternative is excluded)",
                group_text(&group)
            ));
            continue;
        }
        let Some(c) = pick else {
            let needed = if by == "the spec" { "requested by the spec".to_string() } else { format!("needed by {by}") };
            return Err(DebError::Unsatisfiable { relation: group_text(&group), needed, tried });
        };
        why.insert(c.name.clone(), by.clone());
        chosen.insert(c.name.clone(), c);
        let deps = parse_relations(&c.depends).map_err(|e| relations_error(c, "Depends", e))?;
        for g in deps {
            queue.push_back((g, format!("{} {}", c.name, c.version)));
        }
    }
    check_conflicts(&chosen, &why)?;
    chosen.retain(|name, _| !req.installed.contains_key(name));
    Ok(Resolution { packages: chosen, notes })
}

/// Refuses a result in which a chosen package declares `Conflicts:` or
/// `Breaks:` against another chosen one (a real package at a matching
/// version, or a provider of a virtual name). A package's relations against
/// itself or what it provides itself are ignored, as dpkg does.
fn relations_error(c: &Candidate, field: &'static str, e: DebError) -> DebError {
    DebError::PackageRelations { package: c.name.clone(), version: c.version.to_string(), field, source: Box::new(e) }
}

fn check_conflicts(chosen: &BTreeMap<String, &Candidate>, why: &BTreeMap<String, String>) -> Result<(), DebError> {
    let needed = |name: &str| match why.get(name).map(String::as_str) {
        Some("the spec") | None => "requested by the spec".to_string(),
        Some(by) if by.starts_with("installed by") => by.to_string(),
        Some(by) => format!("needed by {by}"),
    };
    for c in chosen.values() {
        for (field, text) in [("Conflicts", &c.conflicts), ("Breaks", &c.breaks)] {
            if text.is_empty() {
                continue;
            }
            let groups = parse_relations(text).map_err(|e| relations_error(c, field, e))?;
            for r in groups.into_iter().flatten() {
                let mut hits: Vec<&Candidate> = Vec::new();
                if let Some(o) = chosen.get(&r.name) {
                    if o.name != c.name && r.accepts(&o.version) {
                        hits.push(o);
                    }
                }
                // A conflict with a virtual name hits every other chosen
                // provider of it (versioned: only a matching versioned Provides).
                hits.extend(
                    chosen.values().copied().filter(|o| o.name != c.name && o.name != r.name && provides_ok(o, &r)),
                );
                if let Some(o) = hits.first() {
                    return Err(DebError::Conflict {
                        a: c.name.clone(),
                        a_version: c.version.to_string(),
                        b: o.name.clone(),
                        b_version: o.version.to_string(),
                        field,
                        relation: r.to_string(),
                        a_needed: needed(&c.name),
                        b_needed: needed(&o.name),
                    });
                }
            }
        }
    }
    Ok(())
}

fn satisfied(u: &Universe, chosen: &BTreeMap<String, &Candidate>, r: &Relation) -> bool {
    if let Some(c) = chosen.get(&r.name) {
        if r.accepts(&c.version) {
            return true;
        }
    }
    u.providers.get(&r.name).is_some_and(|ps| {
        ps.iter().any(|(pname, pver)| chosen.get(pname).is_some_and(|c| &c.version == pver && provides_ok(c, r)))
    })
}

/// Whether candidate `c` provides `r` (by name and, for versioned
/// relations, by a versioned Provides that satisfies it).
fn provides_ok(c: &Candidate, r: &Relation) -> bool {
    c.provides.iter().any(|p| {
        p.name == r.name
            && match (&r.constraint, &p.constraint) {
                (None, _) => true,
                (Some(_), Some((Op::Eq, pv))) => r.accepts(pv),
                (Some(_), _) => false,
            }
    })
}

/// Why a relation's real package cannot be used: it was already chosen at
/// a version the relation does not accept (this resolver does not backtrack).
struct AlreadyChosen(String);

/// The locked version of the real package `r.name`, when it is available
/// and satisfies `r` (and nothing else was chosen for that name).
fn locked_real<'u>(
    u: &'u Universe,
    chosen: &BTreeMap<String, &'u Candidate>,
    req: &Request,
    r: &Relation,
) -> Option<&'u Candidate> {
    let v = req.locked.get(&r.name)?;
    if req.exclude.contains(&r.name) || chosen.contains_key(&r.name) {
        return None;
    }
    u.by_name.get(&r.name)?.iter().find(|c| &c.version == v && r.accepts(&c.version))
}

/// The highest version of the real package `r.name` that satisfies `r`
/// (the locked one, when it does). Err when the package was already chosen
/// at a version that does not.
fn best_real<'u>(
    u: &'u Universe,
    chosen: &BTreeMap<String, &'u Candidate>,
    req: &Request,
    r: &Relation,
) -> Result<Option<&'u Candidate>, AlreadyChosen> {
    if req.exclude.contains(&r.name) {
        return Ok(None);
    }
    if let Some(c) = locked_real(u, chosen, req, r) {
        return Ok(Some(c));
    }
    if let Some(c) = chosen.get(&r.name) {
        return if r.accepts(&c.version) {
            Ok(Some(c))
        } else if let Some((_, layer)) = req.installed.get(&r.name) {
            Err(AlreadyChosen(format!(
                "{r}: layer `{layer}` below installs {} {}, and a package is installed once; re-lock the layer below so that it pins a version both accept (`strata lock --upgrade-package {}`)",
                c.name, c.version, c.name
            )))
        } else {
            Err(AlreadyChosen(format!(
                "{r}: {} {} was already chosen (no backtracking); pin a version both accept",
                c.name, c.version
            )))
        };
    }
    Ok(u.by_name
        .get(&r.name)
        .and_then(|list| list.iter().filter(|c| r.accepts(&c.version)).max_by(|a, b| a.version.cmp(&b.version))))
}

/// A provider for a virtual relation, with a note when there was a choice.
fn provider<'u>(
    u: &'u Universe,
    chosen: &BTreeMap<String, &'u Candidate>,
    req: &Request,
    r: &Relation,
) -> Result<Option<(&'u Candidate, Option<String>)>, DebError> {
    let Some(ps) = u.providers.get(&r.name) else { return Ok(None) };
    let mut cands: Vec<&'u Candidate> = Vec::new();
    for (pname, pver) in ps {
        if req.exclude.contains(pname) {
            continue;
        }
        if let Some(c) = u.by_name.get(pname).and_then(|l| l.iter().find(|c| &c.version == pver)) {
            if provides_ok(c, r) && chosen.get(pname).is_none_or(|x| x.version == c.version) {
                cands.push(c);
            }
        }
    }
    // One version per provider: the highest.
    let mut best: BTreeMap<&str, &'u Candidate> = BTreeMap::new();
    for &c in &cands {
        let e = best.entry(c.name.as_str()).or_insert(c);
        if c.version > e.version {
            *e = c;
        }
    }
    if best.is_empty() {
        return Ok(None);
    }
    if let Some(p) = req.prefer.get(&r.name) {
        return match best.get(p.as_str()) {
            Some(c) => Ok(Some((c, None))),
            None => Err(DebError::NotAProvider {
                name: r.name.clone(),
                provider: p.clone(),
                relation: r.to_string(),
                providers: best.keys().map(|k| k.to_string()).collect(),
            }),
        };
    }
    let mut list: Vec<&'u Candidate> = best.values().copied().collect();
    list.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    let first = list[0];
    let names = list.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    // The provider the lock chose before, at its locked version, stays.
    if let Some(c) = cands.iter().find(|c| req.locked.get(&c.name) == Some(&c.version)) {
        let note = (list.len() > 1).then(|| {
            if c.name == first.name {
                format!(
                    "provider: {} for `{}` (highest priority among {names}; set `prefer:` to choose another)",
                    c.name, r.name
                )
            } else {
                format!(
                    "provider: {} for `{}` (kept from the lock; among {names}; set `prefer:` to choose another)",
                    c.name, r.name
                )
            }
        });
        return Ok(Some((c, note)));
    }
    let note = (list.len() > 1).then(|| {
        format!(
            "provider: {} for `{}` (highest priority among {names}; set `prefer:` to choose another)",
            first.name, r.name,
        )
    });
    Ok(Some((first, note)))
}

/// True when `r` names no real package and all its providers are excluded.
fn only_excluded_providers(u: &Universe, req: &Request, r: &Relation) -> bool {
    !u.by_name.contains_key(&r.name)
        && u.providers.get(&r.name).is_some_and(|ps| !ps.is_empty() && ps.iter().all(|(n, _)| req.exclude.contains(n)))
}

fn describe_missing(u: &Universe, r: &Relation) -> String {
    match u.by_name.get(&r.name) {
        Some(list) => {
            let mut vs: Vec<&Version> = list.iter().map(|c| &c.version).collect();
            vs.sort();
            format!(
                "{r}: the archives have {} {}",
                r.name,
                vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            )
        }
        None => format!("{r}: no package of that name, and none provides it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::deb::control::{parse_paragraphs, parse_relation};
    use crate::sources::deb::version::Version;

    fn universe(text: &str) -> Universe {
        let mut u = Universe::default();
        for p in parse_paragraphs(text, "test").unwrap() {
            let mut p = p;
            // Fill the fields every index has.
            let mut extra = String::new();
            for (k, v) in [
                ("Architecture", "amd64"),
                ("SHA256", "0000000000000000000000000000000000000000000000000000000000000000"),
                ("Size", "1"),
                ("Filename", "pool/x.deb"),
            ] {
                if p.get(k).is_none() {
                    extra.push_str(&format!("{k}: {v}\n"));
                }
            }
            if !extra.is_empty() {
                let mut t: String = p.fields().iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                t.push_str(&extra);
                p = parse_paragraphs(&t, "t").unwrap().remove(0);
            }
            if let Some(c) = Candidate::from_paragraph(&p, "amd64", 0, "test").unwrap() {
                u.add(c);
            }
        }
        u
    }

    fn req(roots: &[&str]) -> Request {
        Request { roots: roots.iter().map(|r| vec![parse_relation(r).unwrap()]).collect(), ..Request::default() }
    }

    fn names(r: &Resolution<'_>) -> Vec<String> {
        r.packages.iter().map(|(n, c)| format!("{n}={}", c.version)).collect()
    }

    const IDX: &str = "\
Package: app\nVersion: 1.0\nDepends: libc (>= 2), awk, mail-transport-agent | exim, cyc-a\n\n\
Package: libc\nVersion: 1.5\n\n\
Package: libc\nVersion: 2.1\n\n\
Package: libc\nVersion: 3.0\nArchitecture: arm64\n\n\
Package: gawk\nVersion: 5\nProvides: awk\nPriority: optional\n\n\
Package: mawk\nVersion: 1.3\nProvides: awk\nPriority: required\n\n\
Package: exim\nVersion: 4\n\n\
Package: cyc-a\nVersion: 1\nDepends: cyc-b\n\n\
Package: cyc-b\nVersion: 1\nPre-Depends: cyc-a (= 1)\n\n\
Package: old\nVersion: 1\nDepends: libc (<< 2)\n\n\
Package: vers\nVersion: 1\nDepends: foo-abi (>= 2)\n\n\
Package: foo\nVersion: 9\nProvides: foo-abi (= 2)\n\n\
Package: bar\nVersion: 9\nProvides: foo-abi\n";

    #[test]
    fn alternatives_virtuals_versions_cycles() {
        let u = universe(IDX);
        let r = resolve(&u, &req(&["app"])).unwrap();
        assert_eq!(names(&r), ["app=1.0", "cyc-a=1", "cyc-b=1", "exim=4", "libc=2.1", "mawk=1.3"]);
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("provider: mawk for `awk`"), "{:?}", r.notes);
    }

    #[test]
    fn preferences_and_excludes() {
        let u = universe(IDX);
        let mut q = req(&["app"]);
        q.prefer.insert("awk".into(), "gawk".into());
        q.exclude.insert("exim".into());
        let r = resolve(&u, &q).unwrap();
        assert!(names(&r).contains(&"gawk=5".to_string()));
        assert!(!r.packages.contains_key("exim"));
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("excluded: mail-transport-agent | exim (needed by app 1.0; every installable")),
            "{:?}",
            r.notes
        );
        // Excluding every provider of a virtual package skips the dependency.
        q.exclude.insert("gawk".into());
        q.exclude.insert("mawk".into());
        q.prefer.clear();
        let r = resolve(&u, &q).unwrap();
        assert!(!r.packages.contains_key("mawk") && !r.packages.contains_key("gawk"));
        assert!(
            r.notes.iter().any(|n| n.contains("awk (needed by app 1.0; every installable alternative is excluded)")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn locked_versions_and_providers_are_kept_while_they_fit() {
        let u = universe(IDX);
        let v = |s: &str| Version::parse(s).unwrap();
        // A locked version that still satisfies the relation wins over the highest.
        let mut q = req(&["libc"]);
        q.locked.insert("libc".into(), v("1.5"));
        assert_eq!(names(&resolve(&u, &q).unwrap()), ["libc=1.5"]);
        // One that does not is replaced by the highest that does.
        let mut q = req(&["app"]);
        q.locked.insert("libc".into(), v("1.5"));
        q.locked.insert("gawk".into(), v("5"));
        let r = resolve(&u, &q).unwrap();
        assert!(names(&r).contains(&"libc=2.1".to_string()));
        // The locked provider stays although another has a higher priority, and the note says so.
        assert!(names(&r).contains(&"gawk=5".to_string()) && !r.packages.contains_key("mawk"), "{:?}", names(&r));
        assert!(r.notes.iter().any(|n| n.starts_with("provider: gawk for `awk` (kept from the lock")), "{:?}", r.notes);
        // `prefer:` still decides over the lock.
        q.prefer.insert("awk".into(), "mawk".into());
        assert!(names(&resolve(&u, &q).unwrap()).contains(&"mawk=1.3".to_string()));
        // A locked alternative is kept: without the lock the first one wins.
        let mut q = Request { roots: vec![parse_relations("gawk | mawk").unwrap().remove(0)], ..Request::default() };
        assert_eq!(names(&resolve(&u, &q).unwrap()), ["gawk=5"]);
        q.locked.insert("mawk".into(), v("1.3"));
        assert_eq!(names(&resolve(&u, &q).unwrap()), ["mawk=1.3"]);
    }

    #[test]
    fn versioned_virtual_needs_versioned_provides() {
        let u = universe(IDX);
        let r = resolve(&u, &req(&["vers"])).unwrap();
        assert_eq!(names(&r), ["foo=9", "vers=1"]);
    }

    #[test]
    fn version_constraints_pick_the_highest_match_or_fail() {
        let u = universe(IDX);
        let r = resolve(&u, &req(&["libc (<< 2)"])).unwrap();
        assert_eq!(names(&r), ["libc=1.5"]);
        let e = resolve(&u, &req(&["libc (>= 3)"])).unwrap_err().to_string();
        assert!(
            e.contains("cannot satisfy `libc (>= 3)` (requested by the spec)")
                && e.contains("the archives have libc 1.5, 2.1"),
            "{e}"
        );
        let e = resolve(&u, &req(&["app", "old"])).unwrap_err().to_string();
        assert!(e.contains("libc 2.1 was already chosen"), "{e}");
        let e = resolve(&u, &req(&["nosuch"])).unwrap_err().to_string();
        assert!(e.contains("no package of that name"), "{e}");
    }

    const CONFLICTS: &str = "\
Package: app\nVersion: 1\nDepends: tool, lib\n\n\
Package: tool\nVersion: 2\nConflicts: lib (<< 1.5)\nBreaks: lib (>= 3)\n\n\
Package: lib\nVersion: 1.0\n\n\
Package: lib\nVersion: 2.0\n\n\
Package: lib\nVersion: 3.0\n\n\
Package: mta-a\nVersion: 1\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
Package: mta-b\nVersion: 1\nProvides: mail-transport-agent\n";

    #[test]
    fn conflicts_and_breaks_between_chosen_packages_are_refused() {
        let u = universe(CONFLICTS);
        // lib 3.0 (the highest) is broken by tool 2.
        let e = resolve(&u, &req(&["app"])).unwrap_err().to_string();
        assert!(
            e.starts_with("tool 2 and lib 3.0 cannot be installed together: tool 2 declares `Breaks: lib (>= 3)`"),
            "{e}"
        );
        assert!(e.contains("tool is needed by app 1") && e.contains("lib is needed by app 1"), "{e}");
        // Pinned to a version neither relation matches: fine.
        assert_eq!(names(&resolve(&u, &req(&["lib (= 2.0)", "app"])).unwrap()), ["app=1", "lib=2.0", "tool=2"]);
        // Conflicts with a version range.
        let e = resolve(&u, &req(&["lib (= 1.0)", "tool"])).unwrap_err().to_string();
        assert!(
            e.contains("tool 2 declares `Conflicts: lib (<< 1.5)`") && e.contains("lib is requested by the spec"),
            "{e}"
        );
    }

    #[test]
    fn conflicts_with_a_virtual_name_spare_the_package_itself() {
        let u = universe(CONFLICTS);
        // mta-a provides and conflicts with mail-transport-agent: alone it is fine.
        assert_eq!(names(&resolve(&u, &req(&["mta-a"])).unwrap()), ["mta-a=1"]);
        // With another provider chosen, it is a clash.
        let e = resolve(&u, &req(&["mta-a", "mta-b"])).unwrap_err().to_string();
        assert!(e.contains("mta-a 1 and mta-b 1 cannot be installed together"), "{e}");
        assert!(e.contains("`Conflicts: mail-transport-agent`"), "{e}");
    }

    #[test]
    fn packages_installed_below_satisfy_relations_and_are_not_pinned_again() {
        let mut u = universe(IDX);
        let v = |s: &str| Version::parse(s).unwrap();
        let below = |pairs: &[(&str, &str)]| -> BTreeMap<String, (Version, String)> {
            pairs.iter().map(|(n, ver)| (n.to_string(), (v(ver), "base".to_string()))).collect()
        };
        // libc and mawk (the awk provider) come from the layer below: app brings only the rest.
        let q = Request { installed: below(&[("libc", "2.1"), ("mawk", "1.3")]), ..req(&["app"]) };
        let r = resolve(&u, &q).unwrap();
        assert_eq!(names(&r), ["app=1.0", "cyc-a=1", "cyc-b=1", "exim=4"]);
        assert!(r.notes.is_empty(), "no provider choice is made for what is installed: {:?}", r.notes);
        // Asking for a package that is installed below pins nothing.
        let q = Request { installed: below(&[("libc", "2.1")]), ..req(&["libc"]) };
        assert!(resolve(&u, &q).unwrap().packages.is_empty());
        // A relation the installed version does not meet is an error, not a second copy.
        let q = Request { installed: below(&[("libc", "1.5")]), ..req(&["app"]) };
        let e = resolve(&u, &q).unwrap_err().to_string();
        assert!(
            e.contains("cannot satisfy `libc (>= 2)` (needed by app 1.0)")
                && e.contains("layer `base` below installs libc 1.5")
                && e.contains("strata lock --upgrade-package libc"),
            "{e}"
        );
        // Conflicts with what is installed below count.
        let mut cu = universe(CONFLICTS);
        let q = Request { installed: below(&[("lib", "1.0")]), ..req(&["tool"]) };
        let e = resolve(&cu, &q).unwrap_err().to_string();
        assert!(
            e.contains("tool 2 declares `Conflicts: lib (<< 1.5)`")
                && e.contains("lib is installed by layer `base` below"),
            "{e}"
        );
        // A version the archives no longer list (superseded since the layer below
        // was locked) still counts once it is made known.
        let q = Request { installed: below(&[("lib", "2.5")]), ..req(&["app"]) };
        let e = resolve(&cu, &q).unwrap_err().to_string();
        assert!(e.contains("lib 2.5, installed by layer `base` below, is not in this layer's archives"), "{e}");
        cu.ensure_installed("lib", &v("2.5"), "amd64");
        assert_eq!(names(&resolve(&cu, &q).unwrap()), ["app=1", "tool=2"]);
        // ensure_installed leaves a version the archives have as it is (with its relations).
        u.ensure_installed("app", &v("1.0"), "amd64");
        let q = Request { installed: below(&[("app", "1.0")]), ..req(&["app"]) };
        assert!(resolve(&u, &q).unwrap().packages.is_empty());
    }

    #[test]
    fn output_does_not_depend_on_index_order() {
        let mut paras: Vec<&str> = IDX.split("\n\n").collect();
        paras.reverse();
        let u2 = universe(&paras.join("\n\n"));
        let u = universe(IDX);
        assert_eq!(names(&resolve(&u, &req(&["app"])).unwrap()), names(&resolve(&u2, &req(&["app"])).unwrap()));
    }
}
