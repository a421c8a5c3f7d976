//! Forwarding: mail for a local user with `forward_to` goes to those
//! addresses, its envelope sender rewritten with SRS so that SPF at the
//! destination checks our domain; mail for an SRS address of ours (a
//! bounce of forwarded mail coming back) goes to the original sender.
//!
//! The SRS key is `state/srs/key` (32 random bytes, mode 0600), made by
//! whichever of the relay and the receiver starts first: the receiver
//! checks SRS recipients with it at `RCPT`, the relay rewrites with it.

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

/// The envelopes a message for `rcpts` from `from` becomes: the original
/// one for the recipients kept, and one with the SRS-rewritten sender for
/// the forwarding targets. Returns `(sender, recipients)` pairs, none
/// empty.
pub(crate) fn expand(
    db: &UserDb,
    domain: &str,
    srs: &Srs,
    from: &str,
    rcpts: &[String],
    now: u64,
) -> Vec<(String, Vec<String>)> {
    let mut kept: Vec<String> = Vec::new();
    let mut forwarded: Vec<String> = Vec::new();
    let push = |list: &mut Vec<String>, a: String| {
        if !list.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
            list.push(a);
        }
    };
    for r in rcpts {
        if domain_of(r) != domain {
            push(&mut kept, r.clone());
            continue;
        }
        if Srs::is_srs(r) {
            match srs.reverse(r, today(now)) {
                Ok(original) => push(&mut kept, original),
                // Checked at RCPT; a key changed in between.
                Err(e) => tracing::warn!(service = "relay", rcpt = r, "dropped: {e}"),
            }
            continue;
        }
        match db.owner(r) {
            Some((owner, user)) if !user.forward_to.is_empty() => {
                for target in &user.forward_to {
                    if target.eq_ignore_ascii_case(owner) || domain_of(target) == domain {
                        push(&mut kept, target.clone());
                    } else {
                        push(&mut forwarded, target.clone());
                    }
                }
            }
            _ => push(&mut kept, r.clone()),
        }
    }
    let mut out = Vec::new();
    let rewritten = if forwarded.is_empty() {
        None
    } else {
        match srs.forward(from, domain, today(now)) {
            Ok(s) => Some(s),
            Err(e) => {
                // Too long to rewrite: forwarded as it is (SPF may fail).
                tracing::warn!(service = "relay", from, "not rewritten: {e}");
                Some(from.to_string())
            }
        }
    };
    match rewritten {
        Some(s) if s == from => {
            kept.extend(forwarded);
            out.push((from.to_string(), kept));
        }
        Some(s) => {
            if !kept.is_empty() {
                out.push((from.to_string(), kept));
            }
            out.push((s, forwarded));
        }
        None => out.push((from.to_string(), kept)),
    }
    out.retain(|(_, r)| !r.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userdb::User;

    #[test]
    fn forwarding_rewrites_and_bounces_come_back() {
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
                ..User::default()
            },
        );
        db.insert("dave@example.org", User::default());
        let srs = Srs::new(b"k");
        let now = 1_800_000_000;
        let rcpts: Vec<String> = [
            "bob@example.org",
            "carol@example.org",
            "dave@example.org",
            "x@remote.example",
        ]
        .map(String::from)
        .to_vec();
        let out = expand(&db, "example.org", &srs, "ann@origin.example", &rcpts, now);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].0, "ann@origin.example");
        assert_eq!(
            out[0].1,
            ["carol@example.org", "dave@example.org", "x@remote.example"]
        );
        assert!(out[1].0.starts_with("SRS0=") && out[1].0.ends_with("@example.org"));
        assert_eq!(out[1].1, ["bob@elsewhere.example", "c@elsewhere.example"]);
        // The bounce of the forwarded copy, to the SRS address.
        let back = expand(
            &db,
            "example.org",
            &srs,
            "",
            &[out[1].0.clone()],
            now + 86_400,
        );
        assert_eq!(
            back,
            vec![(String::new(), vec!["ann@origin.example".to_string()])]
        );
        // Our own users' mail is forwarded without a rewrite.
        let own = expand(
            &db,
            "example.org",
            &srs,
            "dave@example.org",
            &["bob@example.org".into()],
            now,
        );
        assert_eq!(
            own,
            vec![(
                "dave@example.org".to_string(),
                vec!["bob@elsewhere.example".to_string()]
            )]
        );
        // A forged SRS address goes nowhere.
        let forged = expand(
            &db,
            "example.org",
            &srs,
            "",
            &["SRS0=aaaaaa=zz=victim.example=v@example.org".into()],
            now,
        );
        assert!(forged.is_empty());
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
