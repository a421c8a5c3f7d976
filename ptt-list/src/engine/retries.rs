//! The relay's word on each delivery, the retry queue and the passing of
//! time.

use super::*;

impl State {
    /// Feeds back the result of delivering post `post` of `list` to `rcpt`.
    /// `common` is the post's shared bytes ([`FanOut::common`], or the
    /// `tmp/` file for a retry); it is kept in `tmp/` while retries wait.
    #[allow(clippy::too_many_arguments)]
    pub fn delivery_result(
        &mut self,
        now: u64,
        entropy: &Entropy,
        list: &str,
        post: u64,
        rcpt: &Address,
        result: DeliveryResult,
        common: &[u8],
    ) -> Output {
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let mut out = Output::accept();
        let at = self
            .queue
            .iter()
            .position(|r| r.list == list && r.post == post && r.rcpt == *rcpt);
        let Some(settings) = self.lists.get(list).map(|l| l.settings.clone()) else {
            return out;
        };
        match result {
            DeliveryResult::Delivered => {
                if let Some(i) = at {
                    self.queue.remove(i);
                    out.changes.queue = true;
                }
            }
            DeliveryResult::Permanent(_) => {
                if let Some(i) = at {
                    self.queue.remove(i);
                    out.changes.queue = true;
                }
                let c = out.changes.clone();
                out = self.count_bounce(&mut ctx, list, post, rcpt, Severity::Hard);
                out.changes.merge(c);
            }
            DeliveryResult::Temporary(error) => {
                let entry = match at {
                    Some(i) => &mut self.queue[i],
                    None => {
                        self.queue.push(Retry {
                            list: list.to_string(),
                            post,
                            rcpt: rcpt.clone(),
                            attempts: 0,
                            next: now,
                            deadline: now + settings.retry_deadline,
                            last_error: String::new(),
                        });
                        let blob = post_blob(list, post);
                        if !self.blobs.contains_key(&blob) {
                            self.blobs.insert(blob.clone(), common.to_vec());
                            out.changes.blobs_put.insert(blob);
                        }
                        let n = self.queue.len() - 1;
                        &mut self.queue[n]
                    }
                };
                entry.attempts += 1;
                entry.last_error = error;
                let delay = settings
                    .retry_first
                    .saturating_mul(1u64 << (entry.attempts - 1).min(30))
                    .min(settings.retry_max);
                entry.next = now + delay;
                out.changes.queue = true;
                if entry.next > entry.deadline {
                    let i = at.unwrap_or(self.queue.len() - 1);
                    self.queue.remove(i);
                    out.events
                        .push(Event::Expired(format!("retries of post {post} to {rcpt}")));
                    let c = out.changes.clone();
                    let ev = out.events.clone();
                    out = self.count_bounce(&mut ctx, list, post, rcpt, Severity::Hard);
                    out.changes.merge(c);
                    out.events.splice(0..0, ev);
                } else {
                    out.events.push(Event::Queued {
                        rcpt: rcpt.clone(),
                        next: entry.next,
                    });
                }
            }
        }
        self.gc_blob(list, post, &mut out.changes);
        out
    }

    pub(super) fn gc_blob(&mut self, list: &str, post: u64, changes: &mut Changes) {
        let blob = post_blob(list, post);
        if self.blobs.contains_key(&blob)
            && !self.queue.iter().any(|r| r.list == list && r.post == post)
        {
            self.blobs.remove(&blob);
            changes.blobs_put.remove(&blob);
            changes.blobs_removed.insert(blob);
        }
    }

    /// Retries due at `now`: each with its delivery (VERP, per-subscriber
    /// header) and the `tmp/` file holding the shared bytes.
    pub fn due_retries(&self, now: u64) -> Vec<(Retry, Delivery)> {
        self.queue
            .iter()
            .filter(|r| r.next <= now)
            .filter_map(|r| {
                let list = self.lists.get(&r.list)?;
                Some((r.clone(), delivery_for(list, r.post, &r.rcpt)))
            })
            .collect()
    }

    /// When [`State::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let q = self.queue.iter().map(|r| r.next.min(r.deadline));
        let l = self.lists.values().flat_map(|l| {
            l.pending
                .iter()
                .map(|p| p.expires)
                .chain(l.held.iter().map(|h| h.expires))
        });
        q.chain(l).min()
    }

    /// Drops expired pending requests and held posts (and their `tmp/`
    /// files), and gives up retries past their deadline (counted as hard
    /// bounces).
    pub fn handle_timeout(&mut self, now: u64, entropy: &Entropy) -> Output {
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let mut out = Output::accept();
        for (name, list) in self.lists.iter_mut() {
            let before = (list.pending.len(), list.held.len());
            list.pending.retain(|p| {
                let keep = p.expires > now;
                if !keep {
                    out.events.push(Event::Expired(format!(
                        "pending request of {} on {name}",
                        p.address
                    )));
                }
                keep
            });
            let mut gone = Vec::new();
            list.held.retain(|h| {
                let keep = h.expires > now;
                if !keep {
                    gone.push(held_blob(&h.token));
                }
                keep
            });
            for b in gone {
                self.blobs.remove(&b);
                out.events
                    .push(Event::Expired(format!("held post {b} on {name}")));
                out.changes.blobs_removed.insert(b);
            }
            if before != (list.pending.len(), list.held.len()) {
                out.changes.lists.insert(name.clone());
            }
        }
        let expired: Vec<Retry> = self
            .queue
            .iter()
            .filter(|r| r.deadline <= now)
            .cloned()
            .collect();
        if !expired.is_empty() {
            self.queue.retain(|r| r.deadline > now);
            out.changes.queue = true;
        }
        for r in expired {
            out.events.push(Event::Expired(format!(
                "retries of post {} to {}",
                r.post, r.rcpt
            )));
            let o = self.count_bounce(&mut ctx, &r.list, r.post, &r.rcpt, Severity::Hard);
            out.merge_from(o);
            let mut c = Changes::default();
            self.gc_blob(&r.list, r.post, &mut c);
            out.changes.merge(c);
        }
        out
    }
}
