//! The receiver's spam filter: ptt-spam's Bayesian classifier over a token
//! database in the receiver's state (`[receiver] spam_db`), read at start
//! and read again when the file is replaced (by `ptt spam train` or a
//! copy), and trained by the domain's own users: a message they send to
//! `spam@DOMAIN` or `ham@DOMAIN` (the message they forward as an
//! attachment, or the message itself) is learnt as that class.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use ptt_spam::{Class, Classification, Params, TokenDb, Tokenizer};

/// The filter, shared by the receiver's sessions.
pub(crate) struct SpamFilter {
    path: PathBuf,
    db: RwLock<Arc<TokenDb>>,
    /// The modification time of the file the database was read from.
    stamp: Mutex<Option<SystemTime>>,
    dangerous: Vec<String>,
    params: Params,
    /// One training at a time (read, train, write).
    training: Mutex<()>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl SpamFilter {
    /// Reads the database at `path` (an empty one when there is no file
    /// yet: every message is then `unsure`).
    pub(crate) fn open(path: &Path, dangerous: &[String]) -> Result<SpamFilter, String> {
        let db = if path.exists() {
            ptt_spam::store::load(path).map_err(|e| format!("spam_db {}: {e}", path.display()))?
        } else {
            TokenDb::new()
        };
        Ok(SpamFilter {
            path: path.to_path_buf(),
            db: RwLock::new(Arc::new(db)),
            stamp: Mutex::new(modified(path)),
            dangerous: dangerous.to_vec(),
            params: Params::default(),
            training: Mutex::new(()),
        })
    }

    fn current(&self) -> Arc<TokenDb> {
        self.db
            .read()
            .map(|db| db.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn tokenizer(&self, db: &TokenDb) -> Tokenizer {
        let dangerous: Vec<&str> = self.dangerous.iter().map(String::as_str).collect();
        Tokenizer::default()
            .osb_window(db.osb_window())
            .dangerous_extensions(&dangerous)
    }

    /// Scores a message (CPU work: call it off the event loop).
    pub(crate) fn classify(&self, message: &[u8]) -> Classification {
        let db = self.current();
        let tokens = self.tokenizer(&db).tokenize(message);
        ptt_spam::classify(&db, &tokens, &self.params)
    }

    /// Reads the file again if it was replaced since; says whether it was.
    pub(crate) fn reload_if_replaced(&self) -> Result<bool, String> {
        let now = modified(&self.path);
        {
            let stamp = self.stamp.lock().map_err(|_| "poisoned")?;
            if *stamp == now || now.is_none() {
                return Ok(false);
            }
        }
        let db = ptt_spam::store::load(&self.path)
            .map_err(|e| format!("spam_db {}: {e}", self.path.display()))?;
        if let Ok(mut slot) = self.db.write() {
            *slot = Arc::new(db);
        }
        if let Ok(mut stamp) = self.stamp.lock() {
            *stamp = now;
        }
        Ok(true)
    }

    /// Learns `message` as `class`, and writes the database (atomically).
    pub(crate) fn train(&self, message: &[u8], class: Class) -> Result<(), String> {
        let _one = self.training.lock().map_err(|_| "poisoned")?;
        // The file as it is now (a replaced one too), trained and written back.
        let mut db = if self.path.exists() {
            ptt_spam::store::load(&self.path)
                .map_err(|e| format!("spam_db {}: {e}", self.path.display()))?
        } else {
            TokenDb::new()
        };
        let tokens = self.tokenizer(&db).tokenize(message);
        db.train(tokens.hashes(), class);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        ptt_spam::store::save(&db, &self.path)
            .map_err(|e| format!("spam_db {}: {e}", self.path.display()))?;
        if let Ok(mut slot) = self.db.write() {
            *slot = Arc::new(db);
        }
        if let Ok(mut stamp) = self.stamp.lock() {
            *stamp = modified(&self.path);
        }
        Ok(())
    }
}

/// What a user sends to `spam@`/`ham@` is trained on: each message it
/// carries as an attachment (`message/rfc822`), or, without one, the
/// message itself.
pub(crate) fn messages_to_learn(message: &[u8]) -> Vec<Vec<u8>> {
    let Some(parsed) = mail_parser::MessageParser::default().parse(message) else {
        return vec![message.to_vec()];
    };
    let attached: Vec<Vec<u8>> = parsed
        .attachments()
        .filter_map(|part| part.message())
        .map(|m| m.raw_message().to_vec())
        .collect();
    if attached.is_empty() {
        vec![message.to_vec()]
    } else {
        attached
    }
}

/// The header fields a spam verdict is written in: removed from what
/// arrives, so that nobody upstream can vouch for a message here.
pub(crate) const VERDICT_FIELDS: &[&[u8]] = &[b"x-spam-status", b"x-spam-flag", b"x-spam-score"];

/// Whether `field` is one of [`VERDICT_FIELDS`].
pub(crate) fn is_verdict_field(field: &ptt_dkim::HeaderField<'_>) -> bool {
    VERDICT_FIELDS
        .iter()
        .any(|n| field.name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_verdicts_are_removed_and_attachments_learnt() {
        let forged =
            b"X-Spam-Status: No, score=-100\r\nSubject: s\r\nX-Spam-Flag: NO\r\n\r\nbody\r\n";
        assert_eq!(
            crate::authn::without_fields(forged, is_verdict_field),
            b"Subject: s\r\n\r\nbody\r\n"
        );
        let fwd =
            b"Subject: spam for you\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: cheap pills\r\n\r\nbuy now\r\n--b--\r\n";
        let learnt = messages_to_learn(fwd);
        assert_eq!(learnt.len(), 1);
        assert!(String::from_utf8_lossy(&learnt[0]).contains("cheap pills"));
        assert_eq!(messages_to_learn(b"Subject: x\r\n\r\ny\r\n").len(), 1);
    }

    #[test]
    fn training_is_written_and_a_replaced_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spam.db");
        let filter = SpamFilter::open(&path, &["exe".into()]).unwrap();
        let spam = b"Subject: cheap pills now\r\n\r\nbuy cheap pills now online\r\n";
        let ham = b"Subject: meeting notes\r\n\r\nthe minutes of the meeting are attached\r\n";
        for _ in 0..3 {
            filter.train(spam, Class::Spam).unwrap();
            filter.train(ham, Class::Ham).unwrap();
        }
        assert!(path.exists());
        assert_eq!(filter.classify(spam).verdict, ptt_spam::Verdict::Spam);
        let other = SpamFilter::open(&path, &[]).unwrap();
        assert_eq!(other.classify(ham).verdict, ptt_spam::Verdict::Ham);
        // Replaced by an empty database: read again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        ptt_spam::store::save(&TokenDb::new(), &path).unwrap();
        assert!(filter.reload_if_replaced().unwrap());
        assert_eq!(filter.classify(spam).verdict, ptt_spam::Verdict::Unsure);
        let dangerous = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n\r\nAA\r\n--b--\r\n";
        assert_eq!(
            filter.classify(dangerous).dangerous_attachment.as_deref(),
            Some("invoice.pdf.exe")
        );
    }
}
