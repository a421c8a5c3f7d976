//! The signer's keys: PEM files in `state/signer/keys/` (mode 0600) and
//! `keys.toml`, which says what each selector is for. A selector goes
//!
//! `pending` (made by `ptt dkim rotate`, published, not yet signing) →
//! `active` (signing) → `retiring` (still published, so that mail in flight
//! verifies, until `retire_at`) → `revoked` (published with an empty `p=`,
//! RFC 6376 §3.6.1, until `remove_at`) → `removed` (record and key gone).
//!
//! [`KeyStore::change`] reads, changes and writes `keys.toml` under an
//! exclusive lock on `keys/.lock`, so the running signer and
//! `ptt dkim rotate` never lose each other's changes. [`due`] is the
//! lifecycle's clock: which transitions are due at a time, with no I/O.

use std::fs::File;
use std::path::{Path, PathBuf};

use ptt_dkim::{KeyKind, SigningKey};
use serde::{Deserialize, Serialize};

use crate::store::{write_atomic, write_private};

/// Where a selector is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyState {
    /// Published, waiting for `ptt dkim rotate` to close the loop.
    Pending,
    /// Signing.
    Active,
    /// Published, not signing, until `retire_at`.
    Retiring,
    /// Published revoked (`p=`) until `remove_at`.
    Revoked,
    /// Gone from DNS and disk.
    Removed,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Revoked => "revoked",
            KeyState::Removed => "removed",
        })
    }
}

/// The two algorithms the signer signs with (RFC 8463 §4: both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Algorithm {
    /// `ed25519-sha256`.
    Ed25519,
    /// `rsa-sha256`, 2048 bits.
    Rsa,
}

impl Algorithm {
    /// Both, in the order their signatures are added.
    pub(crate) const BOTH: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::Rsa];

    fn kind(self) -> KeyKind {
        match self {
            Algorithm::Ed25519 => KeyKind::Ed25519,
            Algorithm::Rsa => KeyKind::Rsa2048,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    /// The record of a revoked key of this algorithm (RFC 6376 §3.6.1).
    pub(crate) fn revoked_record(self) -> String {
        format!("v=DKIM1; k={}; p=", self.suffix())
    }
}

/// One selector in `keys.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyEntry {
    /// The selector (`SELECTOR._domainkey.DOMAIN`); its key is `SELECTOR.pem`.
    pub(crate) selector: String,
    /// Its algorithm.
    pub(crate) algorithm: Algorithm,
    /// Where it is in its life.
    pub(crate) state: KeyState,
    /// When it was made (Unix seconds).
    pub(crate) created: u64,
    /// Retiring until then.
    #[serde(default)]
    pub(crate) retire_at: u64,
    /// Revoked until then.
    #[serde(default)]
    pub(crate) remove_at: u64,
}

/// `keys.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeysFile {
    /// Every selector ever made, oldest first.
    #[serde(default, rename = "key")]
    pub(crate) keys: Vec<KeyEntry>,
}

/// What a selector's record should be now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// The key's record.
    Key,
    /// Revoked: `p=` empty.
    Revoked,
    /// No record.
    Absent,
}

impl KeyEntry {
    /// The record this selector should have in DNS.
    pub(crate) fn want(&self) -> Want {
        match self.state {
            KeyState::Pending | KeyState::Active | KeyState::Retiring => Want::Key,
            KeyState::Revoked => Want::Revoked,
            KeyState::Removed => Want::Absent,
        }
    }
}

/// A transition due at some time, once its DNS change is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    /// Retention over: publish the revoked record, then mark it revoked.
    Revoke(String),
    /// Revocation seen long enough: remove the record and the key.
    Remove(String),
}

/// The transitions due at `now`.
pub(crate) fn due(file: &KeysFile, now: u64) -> Vec<Due> {
    file.keys
        .iter()
        .filter_map(|k| match k.state {
            KeyState::Retiring if k.retire_at <= now => Some(Due::Revoke(k.selector.clone())),
            KeyState::Revoked if k.remove_at <= now => Some(Due::Remove(k.selector.clone())),
            _ => None,
        })
        .collect()
}

/// The keys folder of a signer.
#[derive(Debug, Clone)]
pub(crate) struct KeyStore {
    dir: PathBuf,
}

/// A lock held on the keys folder (released when dropped).
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor this value owns.
        unsafe {
            libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.0), libc::LOCK_UN);
        }
    }
}

impl KeyStore {
    /// The store in `dir`, created.
    pub(crate) fn open(dir: &Path) -> Result<KeyStore, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(KeyStore {
            dir: dir.to_path_buf(),
        })
    }

    fn lock(&self) -> Result<Lock, String> {
        let path = self.dir.join(".lock");
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own; blocks until granted.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if r != 0 {
            return Err(format!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Lock(file))
    }

    fn path(&self) -> PathBuf {
        self.dir.join("keys.toml")
    }

    /// The key file of `selector`.
    pub(crate) fn pem_path(&self, selector: &str) -> PathBuf {
        self.dir.join(format!("{selector}.pem"))
    }

    /// Reads `keys.toml` (empty when there is none).
    pub(crate) fn read(&self) -> Result<KeysFile, String> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Reads, changes with `f` and writes back `keys.toml`, under the lock.
    pub(crate) fn change<T>(
        &self,
        f: impl FnOnce(&mut KeysFile) -> Result<T, String>,
    ) -> Result<T, String> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let before = file.clone();
        let out = f(&mut file)?;
        if file != before {
            let text = toml::to_string(&file).map_err(|e| e.to_string())?;
            write_atomic(&self.path(), text.as_bytes())
                .map_err(|e| format!("writing {}: {e}", self.path().display()))?;
        }
        Ok(out)
    }

    /// The key of `selector`.
    pub(crate) fn key(&self, selector: &str) -> Result<SigningKey, String> {
        let path = self.pem_path(selector);
        let pem = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Makes a key pair per algorithm under `prefix` (`PREFIX-ed25519`,
    /// `PREFIX-rsa`) in `state`; an existing PEM of that name is kept (a
    /// site that had keys before `keys.toml` keeps them).
    pub(crate) fn make(
        &self,
        file: &mut KeysFile,
        prefix: &str,
        state: KeyState,
        now: u64,
    ) -> Result<Vec<String>, String> {
        let mut made = Vec::new();
        for algorithm in Algorithm::BOTH {
            let selector = format!("{prefix}-{}", algorithm.suffix());
            if file.keys.iter().any(|k| k.selector == selector) {
                return Err(format!("selector {selector} exists already"));
            }
            let path = self.pem_path(&selector);
            if !path.exists() {
                let seed = crate::random::bytes32()?;
                let key = ptt_dkim::generate_key(algorithm.kind(), seed)
                    .map_err(|e| format!("making a key: {e}"))?;
                write_private(&path, key.pem.as_bytes())
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            file.keys.push(KeyEntry {
                selector: selector.clone(),
                algorithm,
                state,
                created: now,
                retire_at: 0,
                remove_at: 0,
            });
            made.push(selector);
        }
        Ok(made)
    }

    /// At first start: the configured selector's two keys, active.
    pub(crate) fn ensure_initial(&self, prefix: &str, now: u64) -> Result<(), String> {
        self.change(|file| {
            if file.keys.iter().all(|k| k.state != KeyState::Active) {
                self.make(file, prefix, KeyState::Active, now)?;
            }
            Ok(())
        })
    }
}

/// A dated selector prefix for a rotation at `now`: `p2026m12`, or
/// `p2026m12d07` (then `p2026m12d07t0915`) when taken already.
pub(crate) fn dated_prefix(file: &KeysFile, now: u64) -> String {
    let (y, m, d, hh, mm) = civil(now);
    let taken = |p: &str| {
        file.keys
            .iter()
            .any(|k| k.selector.starts_with(&format!("{p}-")))
    };
    let month = format!("p{y}m{m:02}");
    if !taken(&month) {
        return month;
    }
    let day = format!("{month}d{d:02}");
    if !taken(&day) {
        return day;
    }
    format!("{day}t{hh:02}{mm:02}")
}

/// Year, month, day, hour, minute of a Unix time (UTC).
fn civil(unix: u64) -> (i64, u32, u32, u64, u64) {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(selector: &str, state: KeyState, retire_at: u64, remove_at: u64) -> KeyEntry {
        KeyEntry {
            selector: selector.into(),
            algorithm: Algorithm::Rsa,
            state,
            created: 0,
            retire_at,
            remove_at,
        }
    }

    #[test]
    fn transitions_fall_due_at_their_time() {
        let file = KeysFile {
            keys: vec![
                entry("a", KeyState::Retiring, 100, 0),
                entry("b", KeyState::Revoked, 0, 200),
                entry("c", KeyState::Active, 0, 0),
                entry("d", KeyState::Removed, 0, 0),
            ],
        };
        assert_eq!(due(&file, 99), vec![]);
        assert_eq!(due(&file, 100), vec![Due::Revoke("a".into())]);
        assert_eq!(
            due(&file, 200),
            vec![Due::Revoke("a".into()), Due::Remove("b".into())]
        );
        assert_eq!(file.keys[1].want(), Want::Revoked);
        assert_eq!(file.keys[3].want(), Want::Absent);
        assert_eq!(
            Algorithm::Ed25519.revoked_record(),
            "v=DKIM1; k=ed25519; p="
        );
    }

    #[test]
    fn dated_selectors_never_repeat() {
        let now = 1_796_606_807; // 2026-12-07 01:26:47
        let mut file = KeysFile::default();
        assert_eq!(dated_prefix(&file, now), "p2026m12");
        file.keys
            .push(entry("p2026m12-rsa", KeyState::Active, 0, 0));
        assert_eq!(dated_prefix(&file, now), "p2026m12d07");
        file.keys
            .push(entry("p2026m12d07-rsa", KeyState::Active, 0, 0));
        assert_eq!(dated_prefix(&file, now), "p2026m12d07t0126");
    }

    #[test]
    fn changes_are_kept_and_keys_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        store.ensure_initial("ptt", 5).unwrap();
        store.ensure_initial("ptt", 6).unwrap();
        let file = store.read().unwrap();
        assert_eq!(file.keys.len(), 2);
        assert!(
            file.keys
                .iter()
                .all(|k| k.state == KeyState::Active && k.created == 5)
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(store.pem_path("ptt-rsa"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.key("ptt-ed25519").is_ok());
    }
}
