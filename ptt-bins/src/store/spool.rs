//! A spool of messages accepted but not yet taken by the next hop: one
//! `ID.eml` (the message) and one `ID.env` (the envelope, TOML) per message.
//! The message is written first, then the envelope: an entry counts only
//! once its envelope is there, so a crash leaves a whole entry or a stray
//! `.eml` that [`Spool::entries`] ignores.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::write_atomic;

/// Who a spooled message is from and for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The reverse path (empty for `<>`).
    pub(crate) from: String,
    /// The recipients.
    pub(crate) to: Vec<String>,
    /// The authenticated user, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT).
    #[serde(default)]
    pub(crate) dsn: crate::service::transaction::Dsn,
}

/// One spool folder.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens `dir`, creating it.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    /// Stores a message under `id`, durably.
    pub(crate) fn put(&self, id: &str, envelope: &Envelope, message: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.dir.join(format!("{id}.eml")), message)?;
        let env = toml::to_string(envelope).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(format!("{id}.env")), env.as_bytes())
    }

    /// The ids of complete entries, oldest first (ids sort by time).
    pub(crate) fn entries(&self) -> std::io::Result<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".env").map(str::to_string)
            })
            .filter(|id| !id.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads an entry.
    pub(crate) fn load(&self, id: &str) -> std::io::Result<(Envelope, Vec<u8>)> {
        let env = std::fs::read_to_string(self.dir.join(format!("{id}.env")))?;
        let envelope: Envelope = toml::from_str(&env).map_err(std::io::Error::other)?;
        let message = std::fs::read(self.dir.join(format!("{id}.eml")))?;
        Ok((envelope, message))
    }

    /// Removes an entry (the envelope first: without it the rest is void).
    pub(crate) fn remove(&self, id: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.dir.join(format!("{id}.env")))?;
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.eml")));
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// A queue id: time-ordered and unique (microseconds since the epoch and
/// random bits), 20 hex digits.
pub(crate) fn new_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut r = [0u8; 3];
    let _ = crate::random::fill(&mut r);
    format!(
        "{:014x}{:02x}{:02x}{:02x}",
        t.as_micros() as u64,
        r[0],
        r[1],
        r[2]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_a_half_written_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let env = Envelope {
            from: "a@example.org".into(),
            to: vec!["b@example.net".into(), "c@example.net".into()],
            user: Some("a@example.org".into()),
            dsn: Default::default(),
        };
        let (id1, id2) = (new_id(), new_id());
        assert!(id1 < id2 || id1[..14] == id2[..14]);
        spool.put(&id1, &env, b"Subject: x\r\n\r\nhi\r\n").unwrap();
        std::fs::write(dir.path().join(format!("{id2}.eml")), b"half").unwrap();
        assert_eq!(spool.entries().unwrap(), std::slice::from_ref(&id1));
        let (e, m) = spool.load(&id1).unwrap();
        assert_eq!(e, env);
        assert_eq!(m, b"Subject: x\r\n\r\nhi\r\n");
        spool.remove(&id1).unwrap();
        assert!(spool.entries().unwrap().is_empty());
    }
}
