//! The user database as the servers see it: the snapshot at HEAD, swapped
//! whole when HEAD moves (polled) or on SIGHUP, so that a password changed
//! by `ptt passwd` works without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::userdb::UserDb;
use crate::userdb::repo::Source;

/// A live view of the user repository, cheap to clone.
#[derive(Clone)]
pub(crate) struct Users {
    source: Source,
    current: Arc<RwLock<Arc<UserDb>>>,
}

impl Users {
    /// Reads the repository of `config` (fetching it first when remote).
    pub(crate) async fn load(config: &Config, mirror_of: &str) -> Result<Users, String> {
        let Some(users) = &config.users else {
            return Err("no [users] section".into());
        };
        let source = Source::new(&users.repo, &config.state.join(mirror_of).join("users.git"));
        let users = Users {
            source,
            current: Arc::new(RwLock::new(Arc::new(UserDb::default()))),
        };
        users.reload().await?;
        Ok(users)
    }

    /// The snapshot in force.
    pub(crate) fn get(&self) -> Arc<UserDb> {
        self.current.read().map(|db| db.clone()).unwrap_or_default()
    }

    /// Reads HEAD again if it moved; says whether it did.
    pub(crate) async fn reload(&self) -> Result<bool, String> {
        let source = self.source.clone();
        let seen = self.get().commit.clone();
        let read = tokio::task::spawn_blocking(move || {
            source.fetch()?;
            let head = source.head()?.unwrap_or_default();
            if head == seen && !seen.is_empty() {
                return Ok(None);
            }
            source.snapshot().map(Some)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let Some(db) = read else {
            return Ok(false);
        };
        for problem in &db.problems {
            tracing::warn!(repo = self.source.spec(), "user file left out: {problem}");
        }
        tracing::info!(
            repo = self.source.spec(),
            commit = db.commit,
            users = db.len(),
            "user database loaded"
        );
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(db);
        }
        Ok(true)
    }

    /// Polls HEAD every `every` for ever.
    pub(crate) fn watch(&self, every: Duration) -> JoinHandle<()> {
        let users = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = users.reload().await {
                    tracing::warn!(
                        repo = users.source.spec(),
                        "reading the user repository: {e}"
                    );
                }
            }
        })
    }
}
