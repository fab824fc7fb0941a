//! `accounts:`: `/etc/passwd`, `/etc/group` and home directories, written
//! deterministically (sorted by id, then name).

use std::sync::Arc;

use crate::spec::AccountsSpec;
use crate::tree::{Entry, TreePath};

use super::{Context, Part, Source, SourceError};

/// The accounts source.
pub struct Accounts<'a> {
    /// Its spec.
    pub spec: &'a AccountsSpec,
}

struct User {
    name: String,
    uid: u32,
    gid: u32,
    gecos: String,
    home: String,
    shell: String,
}

impl Accounts<'_> {
    fn users(&self) -> Vec<User> {
        let mut users = Vec::new();
        if self.spec.system {
            users.push(User {
                name: "root".into(),
                uid: 0,
                gid: 0,
                gecos: "root".into(),
                home: "/root".into(),
                shell: "/bin/sh".into(),
            });
            users.push(User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
                gecos: "nobody".into(),
                home: "/nonexistent".into(),
                shell: "/usr/sbin/nologin".into(),
            });
        }
        for u in &self.spec.users {
            users.retain(|x| x.name != u.name && x.uid != u.uid);
            users.push(User {
                name: u.name.clone(),
                uid: u.uid,
                gid: u.gid.unwrap_or(u.uid),
                gecos: u.gecos.clone().unwrap_or_default(),
                home: u.home.as_ref().map(|h| h.0.clone()).unwrap_or_else(|| {
                    if u.uid == 0 {
                        "/root".into()
                    } else {
                        format!("/home/{}", u.name)
                    }
                }),
                shell: u.shell.clone().unwrap_or_else(|| "/usr/sbin/nologin".into()),
            });
        }
        users.sort_by(|a, b| (a.uid, &a.name).cmp(&(b.uid, &b.name)));
        users
    }

    fn groups(&self) -> Vec<(String, u32, Vec<String>)> {
        let mut groups: Vec<(String, u32, Vec<String>)> = Vec::new();
        if self.spec.system {
            groups.push(("root".into(), 0, vec![]));
            groups.push(("nogroup".into(), 65534, vec![]));
        }
        for g in &self.spec.groups {
            groups.retain(|x| x.0 != g.name && x.1 != g.gid);
            let mut members = g.members.clone();
            members.sort();
            members.dedup();
            groups.push((g.name.clone(), g.gid, members));
        }
        groups.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        groups
    }

    fn render(&self) -> (String, String) {
        let mut passwd = String::new();
        for u in self.users() {
            passwd.push_str(&format!("{}:x:{}:{}:{}:{}:{}\n", u.name, u.uid, u.gid, u.gecos, u.home, u.shell));
        }
        let mut group = String::new();
        for (name, gid, members) in self.groups() {
            group.push_str(&format!("{name}:x:{gid}:{}\n", members.join(",")));
        }
        (passwd, group)
    }
}

impl Source for Accounts<'_> {
    fn describe(&self) -> String {
        "accounts".into()
    }

    fn plan(&self) -> Result<Vec<Part<'_>>, SourceError> {
        let (passwd, group) = self.render();
        let homes: Vec<(String, u32, u32)> = self
            .users()
            .into_iter()
            .filter(|u| u.home != "/nonexistent" && u.home != "/")
            .map(|u| (u.home, u.uid, u.gid))
            .collect();
        let fp = format!("accounts-v1\n{passwd}--\n{group}--\n{homes:?}\n");
        let populate = move |_: &Context<'_>, tree: &mut crate::tree::Tree| -> Result<(), SourceError> {
            let origin: Arc<str> = Arc::from("accounts");
            let p = |s: &str| TreePath::from_image_path(s).map_err(|e| SourceError::Message(format!("accounts: {e}")));
            tree.insert_spec(p("/etc/passwd")?, Entry::bytes(passwd.into_bytes(), 0o644, &origin))?;
            tree.insert_spec(p("/etc/group")?, Entry::bytes(group.into_bytes(), 0o644, &origin))?;
            for (home, uid, gid) in homes {
                let mode = if uid == 0 { 0o700 } else { 0o755 };
                tree.insert_spec(p(&home)?, Entry::dir(mode, &origin).owned(uid, gid))?;
            }
            Ok(())
        };
        Ok(vec![Part { name: None, fingerprint: fp, populate: Box::new(populate), packages: Vec::new() }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{GroupSpec, UserSpec};

    #[test]
    fn passwd_and_group_are_sorted_by_id() {
        let spec = AccountsSpec {
            system: true,
            groups: vec![
                GroupSpec { name: "zeta".into(), gid: 1001, members: vec!["b".into(), "a".into()] },
                GroupSpec { name: "app".into(), gid: 1000, members: vec![] },
            ],
            users: vec![UserSpec { name: "app".into(), uid: 1000, gid: None, home: None, shell: None, gecos: None }],
        };
        let (passwd, group) = Accounts { spec: &spec }.render();
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        );
        assert_eq!(group, "root:x:0:\napp:x:1000:\nzeta:x:1001:a,b\nnogroup:x:65534:\n");
    }
}
