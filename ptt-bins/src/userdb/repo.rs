//! The user repository on disk or over SSH, through gix.
//!
//! - [`Source`] is what servers read: a local repository (bare or not)
//!   read in place, or a remote one fetched into a bare mirror under the
//!   service's state. [`Source::head`] is a cheap poll; [`Source::snapshot`]
//!   reads every user file at HEAD.
//! - [`Source::change`] makes one commit that adds, replaces or removes one
//!   file, on top of HEAD with compare-and-swap (a concurrent writer makes
//!   it fail and retry, never overwrite). In a non-bare repository the
//!   work tree file and the index follow, so `git status` stays clean. A
//!   remote repository is fetched, changed in the mirror and pushed with
//!   `git push` (gix does not push), which refuses if the remote moved.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::objs::tree::EntryKind;

use super::{DOMAINS_FILE, USERS_DIR, UserDb};

/// What went wrong with the repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// gix failed.
    #[error("{what} {repo}: {detail}")]
    Git {
        /// What was being done.
        what: &'static str,
        /// The repository.
        repo: String,
        /// gix's account of it.
        detail: String,
    },
    /// A file of the work tree or mirror.
    #[error("{0}")]
    Io(String),
    /// `git push` refused.
    #[error("pushing to {repo}: {detail}")]
    Push {
        /// The remote.
        repo: String,
        /// What git said.
        detail: String,
    },
    /// The change lost a race too many times.
    #[error("{0}: HEAD kept moving while committing; try again")]
    Contended(String),
}

/// A user repository.
#[derive(Debug, Clone)]
pub struct Source {
    /// As configured.
    spec: String,
    /// The repository read and written: the path itself, or the mirror.
    local: PathBuf,
    /// Whether `local` is a mirror of `spec`.
    remote: bool,
}

/// Maps any gix error to a [`RepoError`] that says what was being done.
fn gx<T, E: std::fmt::Debug>(
    r: Result<T, E>,
    what: &'static str,
    repo: &str,
) -> Result<T, RepoError> {
    r.map_err(|e| RepoError::Git {
        what,
        repo: repo.to_string(),
        detail: format!("{e:?}"),
    })
}

impl Source {
    /// The repository `spec` (a path or an SSH URL); a remote one is
    /// mirrored in `mirror_dir`.
    pub fn new(spec: &str, mirror_dir: &Path) -> Source {
        let remote = super::is_remote(spec);
        Source {
            spec: spec.to_string(),
            local: if remote {
                mirror_dir.to_path_buf()
            } else {
                PathBuf::from(spec)
            },
            remote,
        }
    }

    /// The repository as configured.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    fn open(&self) -> Result<gix::Repository, RepoError> {
        // Isolated: the service's environment (GIT_DIR, GIT_NAMESPACE, a
        // ~/.gitconfig) never changes which users it reads.
        let mut options = gix::open::Options::isolated();
        if self.remote {
            options = options.config_overrides(["core.sshCommand=ssh -o BatchMode=yes"]);
        }
        gx(gix::open_opts(&self.local, options), "opening", &self.spec)
    }

    /// Opens the repository, creating an empty bare one at a local path
    /// that does not exist yet (the first `ptt adduser`).
    pub fn open_or_create(&self) -> Result<gix::Repository, RepoError> {
        if !self.remote && !self.local.exists() {
            if let Some(parent) = self.local.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| RepoError::Io(format!("creating {}: {e}", parent.display())))?;
            }
            gx(gix::init_bare(&self.local), "creating", &self.spec)?;
        }
        if self.remote {
            self.fetch()?;
        }
        self.open()
    }

    /// Fetches a remote repository into the mirror (nothing for a local one).
    pub fn fetch(&self) -> Result<(), RepoError> {
        if !self.remote {
            return Ok(());
        }
        if !self.local.join("HEAD").is_file() {
            std::fs::create_dir_all(&self.local)
                .map_err(|e| RepoError::Io(format!("creating {}: {e}", self.local.display())))?;
            gx(
                gix::init_bare(&self.local),
                "creating the mirror of",
                &self.spec,
            )?;
        }
        let repo = self.open()?;
        let spec = self.spec.as_str();
        let remote = gx(repo.remote_at(spec), "reaching", spec)?;
        let remote = gx(
            remote.with_refspecs(
                ["+refs/heads/*:refs/heads/*"],
                gix::remote::Direction::Fetch,
            ),
            "fetching",
            spec,
        )?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
        let head_spec = gx(
            gix::refspec::parse("HEAD".into(), gix::refspec::parse::Operation::Fetch),
            "fetching",
            spec,
        )?
        .to_owned();
        let connection = gx(
            remote.connect(gix::remote::Direction::Fetch),
            "connecting to",
            spec,
        )?;
        let prepared = gx(
            connection.prepare_fetch(
                gix::progress::Discard,
                gix::remote::ref_map::Options {
                    extra_refspecs: vec![head_spec],
                    ..Default::default()
                },
            ),
            "fetching",
            spec,
        )?;
        let outcome = gx(
            prepared.receive(gix::progress::Discard, &AtomicBool::new(false)),
            "fetching",
            spec,
        )?;
        use gix::protocol::handshake::Ref;
        let target = outcome.ref_map.remote_refs.iter().find_map(|r| match r {
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } if full_ref_name == "HEAD" => Some(target.clone()),
            _ => None,
        });
        if let Some(t) = target {
            use gix::refs::FullName;
            use gix::refs::transaction::{PreviousValue, RefEdit};
            let head: FullName = gx(FullName::try_from("HEAD"), "fetching", spec)?;
            let branch = gx(FullName::try_from(t), "fetching", spec)?;
            gx(
                repo.edit_reference(RefEdit::update(
                    head,
                    branch,
                    PreviousValue::Any,
                    "fetch: remote HEAD",
                )),
                "fetching",
                spec,
            )?;
        }
        Ok(())
    }

    /// The commit at HEAD (hex), `None` for an empty repository.
    pub fn head(&self) -> Result<Option<String>, RepoError> {
        let repo = self.open()?;
        let head = gx(repo.head(), "reading HEAD of", &self.spec)?;
        Ok(head.id().map(|id| id.to_string()))
    }

    /// Every user at HEAD.
    pub fn snapshot(&self) -> Result<UserDb, RepoError> {
        let repo = self.open()?;
        read_snapshot(&repo, &self.spec)
    }

    /// One commit, by `ptt <email>` with `message`, of the files `edit`
    /// gives for the database at HEAD: `(path, Some(bytes))` writes a file,
    /// `(path, None)` removes it; `edit` may refuse (a duplicate, an unknown
    /// user). The commit's parent is the HEAD `edit` saw: when another
    /// writer moved HEAD meanwhile, the commit is refused by the
    /// compare-and-swap and `edit` runs again on the new HEAD.
    pub fn change<F>(&self, message: &str, email: &str, edit: F) -> Result<String, ChangeError>
    where
        F: Fn(&UserDb) -> Result<Vec<(String, Option<Vec<u8>>)>, String>,
    {
        for _ in 0..8 {
            let repo = self.open_or_create().map_err(ChangeError::Repo)?;
            let db = read_snapshot(&repo, &self.spec).map_err(ChangeError::Repo)?;
            let files = edit(&db).map_err(ChangeError::Refused)?;
            let prev = if db.commit.is_empty() {
                None
            } else {
                Some(
                    gix::ObjectId::from_hex(db.commit.as_bytes())
                        .map_err(|e| ChangeError::Repo(RepoError::Io(format!("{e}"))))?,
                )
            };
            match commit_once(&repo, prev, &files, message, email) {
                Ok(id) => {
                    if self.remote {
                        self.push(&id)?;
                    } else if repo.workdir().is_some() {
                        sync_worktree(&repo, &files).map_err(ChangeError::Repo)?;
                    }
                    return Ok(id);
                }
                Err(Lost) => continue,
            }
        }
        Err(ChangeError::Repo(RepoError::Contended(self.spec.clone())))
    }

    fn push(&self, commit: &str) -> Result<(), ChangeError> {
        let repo = self.open().map_err(ChangeError::Repo)?;
        let head = gx(repo.head(), "reading HEAD of", &self.spec).map_err(ChangeError::Repo)?;
        let branch = head
            .referent_name()
            .map(|n| n.as_bstr().to_string())
            .unwrap_or_else(|| "refs/heads/main".into());
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.local)
            .args(["push", "--quiet", &self.spec, &format!("{commit}:{branch}")])
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .output()
            .map_err(|e| {
                ChangeError::Repo(RepoError::Push {
                    repo: self.spec.clone(),
                    detail: format!("running git: {e}"),
                })
            })?;
        if !out.status.success() {
            return Err(ChangeError::Repo(RepoError::Push {
                repo: self.spec.clone(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }));
        }
        Ok(())
    }
}

/// The commit lost the race for HEAD (or could not be made at that HEAD).
struct Lost;

/// Commits `files` on top of `prev` (the HEAD they were computed from);
/// fails when HEAD is no longer `prev`.
fn commit_once(
    repo: &gix::Repository,
    prev: Option<gix::ObjectId>,
    files: &[(String, Option<Vec<u8>>)],
    message: &str,
    email: &str,
) -> Result<String, Lost> {
    let base_tree = match prev {
        Some(c) => repo
            .find_commit(c)
            .ok()
            .and_then(|c| c.tree_id().ok())
            .map(|t| t.detach())
            .ok_or(Lost)?,
        None => gix::ObjectId::empty_tree(repo.object_hash()),
    };
    let mut editor = repo.edit_tree(base_tree).map_err(|_| Lost)?;
    for (path, bytes) in files {
        match bytes {
            Some(bytes) => {
                let blob = repo.write_blob(bytes).map_err(|_| Lost)?;
                editor
                    .upsert(path.as_str(), EntryKind::Blob, blob)
                    .map_err(|_| Lost)?;
            }
            None => {
                editor.remove_leaf(path.as_str()).map_err(|_| Lost)?;
            }
        }
    }
    let tree = editor.write().map_err(|_| Lost)?.detach();
    let sig = gix::actor::Signature {
        name: "ptt".into(),
        email: email.into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let s = sig.to_ref(&mut buf);
    repo.commit_as(s, s, "HEAD", message, tree, prev)
        .map(|id| id.to_string())
        .map_err(|_| Lost)
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The check refused it.
    #[error("{0}")]
    Refused(String),
    /// The repository failed.
    #[error(transparent)]
    Repo(RepoError),
}

fn read_snapshot(repo: &gix::Repository, spec: &str) -> Result<UserDb, RepoError> {
    let head = gx(repo.head(), "reading HEAD of", spec)?;
    let Some(commit) = gx(head.try_into_peeled_id(), "reading HEAD of", spec)? else {
        return Ok(UserDb::default());
    };
    let commit_hex = commit.to_string();
    let root = gx(
        gx(repo.find_commit(commit), "reading", spec)?.tree(),
        "reading the tree of",
        spec,
    )?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(entry) = gx(root.lookup_entry_by_path(DOMAINS_FILE), "reading", spec)?
        && entry.mode().is_blob()
    {
        let data = gx(repo.find_blob(entry.object_id()), "reading", spec)?.take_data();
        files.push((DOMAINS_FILE.to_string(), data));
    }
    if let Some(dir) = gx(root.lookup_entry_by_path(USERS_DIR), "reading", spec)?
        && dir.mode().is_tree()
    {
        let users = gx(repo.find_tree(dir.object_id()), "reading", spec)?;
        for entry in users.iter() {
            let entry = gx(entry, "reading", spec)?;
            if !entry.mode().is_blob() {
                continue;
            }
            let name = entry.filename().to_string();
            let data = gx(repo.find_blob(entry.object_id()), "reading", spec)?.take_data();
            files.push((format!("{USERS_DIR}/{name}"), data));
        }
    }
    Ok(UserDb::from_files(
        commit_hex,
        files.iter().map(|(p, d)| (p.clone(), d.as_slice())),
    ))
}

/// Makes the work tree and the index of a non-bare repository match the
/// commit just made, for the files it changed.
fn sync_worktree(
    repo: &gix::Repository,
    files: &[(String, Option<Vec<u8>>)],
) -> Result<(), RepoError> {
    use gix::index::entry::{Flags, Mode, Stage, Stat};
    let io = |e: std::io::Error| RepoError::Io(format!("updating the work tree: {e}"));
    let ix = |e: String| RepoError::Io(format!("updating the index: {e}"));
    let mut index = match repo.open_index() {
        Ok(index) => index,
        Err(_) => {
            // No index yet: one from the new HEAD tree.
            let tree = repo
                .head_tree_id_or_empty()
                .map_err(|e| ix(format!("{e:?}")))?;
            repo.index_from_tree(&tree.detach())
                .map_err(|e| ix(format!("{e:?}")))?
        }
    };
    for (rela, bytes) in files {
        let Some(abs) = repo.workdir_path(rela.as_str()) else {
            continue;
        };
        let path = gix::bstr::BStr::new(rela.as_str());
        match bytes {
            Some(bytes) => {
                if let Some(parent) = abs.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                std::fs::write(&abs, bytes).map_err(io)?;
                let meta = gix::index::fs::Metadata::from_path_no_follow(&abs).map_err(io)?;
                let stat = Stat::from_fs(&meta).map_err(|e| ix(format!("{e:?}")))?;
                let id = gix::objs::compute_hash(repo.object_hash(), gix::objs::Kind::Blob, bytes)
                    .map_err(|e| ix(format!("{e:?}")))?;
                match index.entry_mut_by_path_and_stage(path, Stage::Unconflicted) {
                    Some(e) => {
                        e.stat = stat;
                        e.id = id;
                        e.mode = Mode::FILE;
                    }
                    None => {
                        index.dangerously_push_entry(stat, id, Flags::empty(), Mode::FILE, path);
                        index.sort_entries();
                    }
                }
            }
            None => {
                match std::fs::remove_file(&abs) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                    _ => {}
                }
                index.remove_entries(|_, p, _| p == path);
            }
        }
    }
    // The cached-tree extension would be stale.
    index.remove_tree();
    index
        .write(gix::index::write::Options::default())
        .map_err(|e| ix(format!("{e:?}")))
}
