//! The user database: a Git repository with one file per user,
//! `users/ADDRESS.toml`, read at HEAD by the servers and changed one
//! commit at a time by `ptt adduser`, `ptt passwd` and `ptt deluser`.
//!
//! ```toml
//! # users/alice@example.org.toml
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! aliases = ["a.liddell@example.org"]
//! forward_to = ["alice@elsewhere.example"]
//! may_send_as = ["sales@example.org"]
//! ```
//!
//! The repository also records which domains its users may be in,
//! `domains.toml` (`domains = ["example.org"]`).
//!
//! [`UserDb`] is one snapshot, parsed and checked:
//!
//! ```
//! use ptt_bins::userdb::{User, UserDb};
//! let mut db = UserDb::default();
//! db.insert("alice@example.org", User { aliases: vec!["al@example.org".into()], ..User::default() });
//! assert_eq!(db.owner("AL@example.org").unwrap().0, "alice@example.org");
//! assert!(db.may_send_as("alice@example.org", "al@example.org"));
//! assert!(!db.may_send_as("alice@example.org", "bob@example.org"));
//! ```

pub mod password;
pub mod repo;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One user's file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The argon2id hash, as a PHC string.
    #[serde(default)]
    pub password: String,
    /// Other addresses that deliver to this user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Real addresses the relay forwards this user's mail to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_to: Vec<String>,
    /// Extra addresses this user may send as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_send_as: Vec<String>,
}

impl User {
    /// The file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// `domains.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    /// The domains users may be in.
    pub domains: Vec<String>,
}

/// Where the user files are, inside the repository.
pub const USERS_DIR: &str = "users";
/// The file naming the repository's domains.
pub const DOMAINS_FILE: &str = "domains.toml";

/// A snapshot of the database.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: BTreeMap<String, User>,
    /// Alias (lowercase) → owner.
    aliases: BTreeMap<String, String>,
    /// The domains, from `domains.toml`.
    pub domains: Vec<String>,
    /// The commit it was read from (hex), empty for an empty repository.
    pub commit: String,
    /// Files that could not be read, with why (they are left out; the
    /// servers log them).
    pub problems: Vec<String>,
}

impl UserDb {
    /// Adds or replaces a user.
    pub fn insert(&mut self, address: &str, user: User) {
        let address = normalize(address);
        for alias in &user.aliases {
            self.aliases.insert(normalize(alias), address.clone());
        }
        self.users.insert(address, user);
    }

    /// The user with this address, or whose alias it is: the user's own
    /// address and record.
    pub fn owner(&self, address: &str) -> Option<(&str, &User)> {
        let address = normalize(address);
        let key = self.aliases.get(&address).unwrap_or(&address);
        self.users.get_key_value(key).map(|(k, u)| (k.as_str(), u))
    }

    /// The user with exactly this address (no alias).
    pub fn get(&self, address: &str) -> Option<&User> {
        self.users.get(&normalize(address))
    }

    /// Whether `user` may use `address` as its sender: its own, an alias,
    /// or a `may_send_as` address.
    pub fn may_send_as(&self, user: &str, address: &str) -> bool {
        let (user, address) = (normalize(user), normalize(address));
        let Some(record) = self.users.get(&user) else {
            return false;
        };
        user == address
            || record.aliases.iter().any(|a| normalize(a) == address)
            || record.may_send_as.iter().any(|a| normalize(a) == address)
    }

    /// Every user, by address.
    pub fn users(&self) -> impl Iterator<Item = (&str, &User)> {
        self.users.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Builds a snapshot from the files of a tree: `(path, bytes)`.
    pub fn from_files<'a>(
        commit: String,
        files: impl IntoIterator<Item = (String, &'a [u8])>,
    ) -> UserDb {
        let mut db = UserDb {
            commit,
            ..UserDb::default()
        };
        for (path, bytes) in files {
            if path == DOMAINS_FILE {
                match std::str::from_utf8(bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|t| toml::from_str::<Domains>(t).map_err(|e| e.to_string()))
                {
                    Ok(d) => db.domains = d.domains.iter().map(|d| normalize(d)).collect(),
                    Err(e) => db.problems.push(format!("{path}: {e}")),
                }
                continue;
            }
            let Some(address) = path
                .strip_prefix(USERS_DIR)
                .and_then(|p| p.strip_prefix('/'))
                .and_then(|p| p.strip_suffix(".toml"))
            else {
                continue;
            };
            if let Err(e) = check_address(address) {
                db.problems.push(format!("{path}: {e}"));
                continue;
            }
            match std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<User>(t).map_err(|e| e.message().to_string()))
            {
                Ok(user) => db.insert(address, user),
                Err(e) => db.problems.push(format!("{path}: {e}")),
            }
        }
        db
    }
}

/// An address as the database keys it: lowercase, trimmed.
pub fn normalize(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

/// Why an address cannot be a user's (it also names a file, so nothing
/// that could leave `users/` or hide is allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `@`, or nothing on one side of it.
    #[error("{0:?} is not an address (LOCAL@DOMAIN)")]
    NotAnAddress(String),
    /// A character outside letters, digits and `. _ + -` in the local part.
    #[error(
        "{0:?}: the local part may hold only letters, digits and . _ + -, not starting or ending with '.' nor holding '..'"
    )]
    LocalPart(String),
    /// Not a domain name.
    #[error("{0:?}: {1:?} is not a domain name")]
    Domain(String, String),
}

/// Checks that `address` can be a user's address.
pub fn check_address(address: &str) -> Result<(), AddressError> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(AddressError::NotAnAddress(address.into()));
    };
    if local.is_empty() || domain.is_empty() {
        return Err(AddressError::NotAnAddress(address.into()));
    }
    let local_ok = local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(AddressError::LocalPart(address.into()));
    }
    if ptt_smtp::Domain::parse(domain, false).is_err() || !domain.contains('.') {
        return Err(AddressError::Domain(address.into(), domain.into()));
    }
    Ok(())
}

/// The domain of an address, lowercase.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or(String::new(), |(_, d)| normalize(d))
}

/// Whether `repo` names a remote repository (SSH) rather than a path.
pub fn is_remote(repo: &str) -> bool {
    repo.starts_with("ssh://")
        || repo.starts_with("git://")
        || repo.starts_with("file://")
        || (!repo.starts_with('/')
            && !repo.starts_with('.')
            && repo
                .split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_could_escape_or_hide_are_refused() {
        for bad in [
            "../x@example.org",
            "a/b@example.org",
            ".a@example.org",
            "a..b@example.org",
            "a@example",
            "a@",
            "@example.org",
            "noat",
            "a b@example.org",
            "a@exa mple.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        for good in ["alice@example.org", "a.b+c_d-e@mail.example.org"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn a_snapshot_reads_users_and_domains_and_reports_bad_files() {
        let files = vec![
            (
                "users/alice@example.org.toml".to_string(),
                &b"password = \"x\"\naliases = [\"Al@Example.org\"]\n"[..],
            ),
            (
                "users/bad@example.org.toml".to_string(),
                &b"pasword = 1"[..],
            ),
            ("users/../x.toml".to_string(), &b""[..]),
            (
                "domains.toml".to_string(),
                &b"domains = [\"Example.org\"]"[..],
            ),
            ("README".to_string(), &b"hi"[..]),
        ];
        let db = UserDb::from_files("abc".into(), files);
        assert_eq!(db.len(), 1);
        assert_eq!(db.domains, ["example.org"]);
        assert_eq!(db.owner("al@example.org").unwrap().0, "alice@example.org");
        assert_eq!(db.problems.len(), 2, "{:?}", db.problems);
    }

    #[test]
    fn remote_and_local_repositories_are_told_apart() {
        assert!(is_remote("git@host:users.git"));
        assert!(is_remote("ssh://git@host/srv/users.git"));
        assert!(!is_remote("/srv/users.git"));
        assert!(!is_remote("users.git"));
        assert!(!is_remote("./a:b"));
    }
}
