//! Forwarding, decided where all mail for local users ends up, the
//! receiver: mail for a user with `forward_to` goes to those addresses
//! (through the signer, which ARC-seals it, and the relay), its envelope
//! sender rewritten with SRS so that SPF at the destination checks our
//! domain; mail for an SRS address of ours (a bounce of forwarded mail
//! coming back) goes to the original sender. A target that is the user
//! (or another local user) is stored here, never forwarded again, so
//! nothing loops.
//!
//! The SRS key is `state/srs/key` (32 random bytes, mode 0600), made at
//! the receiver's first start.

use std::path::Path;

use ptt_queue::srs::Srs;

use crate::userdb::{UserDb, domain_of};

/// Reads the SRS key under `state`, making it at first use.
pub(crate) fn srs_key(state: &Path) -> Result<Srs, String> {
    let dir = state.join("srs");
    let path = dir.join("key");
    if let Ok(key) = std::fs::read(&path)
        && key.len() >= 16
    {
        return Ok(Srs::new(&key));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut key = [0u8; 32];
    crate::random::fill(&mut key).map_err(|e| format!("random bytes for the SRS key: {e}"))?;
    let tmp = dir.join(format!(".key.{}", std::process::id()));
    crate::store::write_private(&tmp, &key).map_err(|e| format!("{}: {e}", tmp.display()))?;
    // A hard link never replaces: if the other service made one first, we
    // read that one.
    let _ = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    let key = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if key.len() < 16 {
        return Err(format!("{} is too short to be an SRS key", path.display()));
    }
    Ok(Srs::new(&key))
}

/// Days since 1970, SRS's clock.
pub(crate) fn today(now: u64) -> u64 {
    now / 86_400
}

/// Where a message for one local address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Stored for these users here.
    Store(Vec<String>),
    /// Stored for these users here and forwarded to these addresses.
    Forward {
        /// Users stored for.
        store: Vec<String>,
        /// Addresses forwarded to.
        targets: Vec<String>,
    },
    /// No such address (a forged or expired SRS address, an unknown user).
    Unknown(String),
}

/// Where mail for `address` (in `domain`) goes.
pub(crate) fn destination(
    db: &UserDb,
    domain: &str,
    srs: &Srs,
    address: &str,
    now: u64,
) -> Destination {
    if Srs::is_srs(address) {
        return match srs.reverse(address, today(now)) {
            Ok(original) => Destination::Forward {
                store: Vec::new(),
                targets: vec![original],
            },
            Err(e) => Destination::Unknown(e.to_string()),
        };
    }
    let Some((owner, user)) = db.owner(address) else {
        if address.to_ascii_lowercase().starts_with("postmaster@") {
            return Destination::Store(vec![format!("postmaster@{domain}")]);
        }
        return Destination::Unknown("no such user here".into());
    };
    if user.forward_to.is_empty() {
        return Destination::Store(vec![owner.to_string()]);
    }
    let (mut store, mut targets) = (Vec::new(), Vec::new());
    for target in &user.forward_to {
        if domain_of(target) == domain {
            // A local target is stored, whatever its own forwarding says.
            if let Some((local, _)) = db.owner(target) {
                store.push(local.to_string());
            }
        } else {
            targets.push(target.clone());
        }
    }
    if targets.is_empty() {
        Destination::Store(store)
    } else {
        Destination::Forward { store, targets }
    }
}

/// The envelope sender of forwarded mail from `from`.
pub(crate) fn rewrite_sender(srs: &Srs, domain: &str, from: &str, now: u64) -> String {
    match srs.forward(from, domain, today(now)) {
        Ok(s) => s,
        Err(e) => {
            // Too long to rewrite: forwarded as it is (SPF may fail there).
            tracing::warn!(service = "receiver", from, "sender not rewritten: {e}");
            from.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userdb::User;

    #[test]
    fn destinations() {
        let mut db = UserDb::default();
        db.insert(
            "bob@example.org",
            User {
                forward_to: vec!["bob@elsewhere.example".into()],
                ..User::default()
            },
        );
        db.insert(
            "carol@example.org",
            User {
                forward_to: vec!["carol@example.org".into(), "c@elsewhere.example".into()],
                aliases: vec!["c@example.org".into()],
                ..User::default()
            },
        );
        db.insert("dave@example.org", User::default());
        let srs = Srs::new(b"k");
        let now = 1_800_000_000;
        let d = |a: &str| destination(&db, "example.org", &srs, a, now);
        assert_eq!(
            d("dave@example.org"),
            Destination::Store(vec!["dave@example.org".into()])
        );
        assert_eq!(
            d("bob@example.org"),
            Destination::Forward {
                store: vec![],
                targets: vec!["bob@elsewhere.example".into()]
            }
        );
        assert_eq!(
            d("C@example.org"),
            Destination::Forward {
                store: vec!["carol@example.org".into()],
                targets: vec!["c@elsewhere.example".into()]
            }
        );
        assert!(matches!(d("nobody@example.org"), Destination::Unknown(_)));
        assert_eq!(
            d("postmaster@example.org"),
            Destination::Store(vec!["postmaster@example.org".into()])
        );
        // A forwarded message's sender, and its bounce coming back.
        let sender = rewrite_sender(&srs, "example.org", "ann@origin.example", now);
        assert!(
            sender.starts_with("SRS0=") && sender.ends_with("@example.org"),
            "{sender}"
        );
        assert_eq!(
            destination(&db, "example.org", &srs, &sender, now + 86_400),
            Destination::Forward {
                store: vec![],
                targets: vec!["ann@origin.example".into()]
            }
        );
        assert_eq!(
            rewrite_sender(&srs, "example.org", "dave@example.org", now),
            "dave@example.org"
        );
        assert!(matches!(
            d("SRS0=aaaaaa=zz=victim.example=v@example.org"),
            Destination::Unknown(_)
        ));
    }

    #[test]
    fn the_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = srs_key(dir.path()).unwrap();
        let b = srs_key(dir.path()).unwrap();
        let x = a.forward("u@o.example", "f.example", 1).unwrap();
        assert_eq!(b.reverse(&x, 1).unwrap(), "u@o.example");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("srs/key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
