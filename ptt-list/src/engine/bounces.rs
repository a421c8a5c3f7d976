//! Bounces to the VERP return paths: scored, decaying, and the
//! subscriber removed at the threshold.

use super::*;

impl State {
    pub(super) fn on_bounce(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        post: u64,
        rcpt: &Address,
        data: &[u8],
    ) -> Output {
        let severity = match parse_dsn(data) {
            Some(reports) => {
                // The VERP address names the subscriber; the report says how bad.
                let mut worst = Severity::None;
                for r in &reports {
                    match r.severity() {
                        Severity::Hard => worst = Severity::Hard,
                        Severity::Soft if worst == Severity::None => worst = Severity::Soft,
                        _ => {}
                    }
                }
                worst
            }
            // Not a DSN (an autoresponder, a non-standard bounce): counted as soft.
            None => Severity::Soft,
        };
        if severity == Severity::None {
            return Output::dropped("delivery report without a failure");
        }
        self.count_bounce(ctx, name, post, rcpt, severity)
    }

    pub(super) fn count_bounce(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        post: u64,
        rcpt: &Address,
        severity: Severity,
    ) -> Output {
        let mut out = Output::accept();
        let Some(list) = self.lists.get(name) else {
            return out;
        };
        if !list.is_subscriber(rcpt) {
            out.events.push(Event::Dropped {
                reason: "bounce for an address that is not subscribed",
            });
            return out;
        }
        let s = &list.settings;
        let (hard, soft, half, threshold) = (
            s.bounce_hard,
            s.bounce_soft,
            s.bounce_half_life,
            s.bounce_threshold,
        );
        let records = self.bounces.entry(name.to_string()).or_default();
        let rec = records
            .entry(rcpt.key().to_string())
            .or_insert(BounceRecord {
                score: 0.0,
                updated: ctx.now,
                last_post: 0,
            });
        if rec.last_post == post && post != 0 {
            out.events.push(Event::Dropped {
                reason: "this post's bounce already counted",
            });
            return out;
        }
        rec.score = decayed(rec.score, rec.updated, ctx.now, half)
            + if severity == Severity::Hard {
                hard
            } else {
                soft
            };
        rec.updated = ctx.now;
        rec.last_post = post;
        let score = rec.score;
        out.changes.bounces = true;
        out.events.push(Event::Bounce {
            rcpt: rcpt.clone(),
            score,
        });
        // As shown (two decimals): five hard bounces in a row reach a
        // threshold of 5 even though the first have decayed a little.
        if score + 0.005 >= threshold {
            records.remove(rcpt.key());
            let Some(list) = self.lists.get_mut(name) else {
                return out;
            };
            list.subscribers.remove(rcpt);
            out.changes.lists.insert(name.to_string());
            let list = &self.lists[name];
            let body = format!(
                "{rcpt} was removed from {}: its bounce score reached {score:.2} (threshold {threshold}).\n",
                list.post_address()
            );
            out.send = to_moderators(
                ctx,
                list,
                &format!("{rcpt} removed from {} for bounces", list.post_address()),
                &body,
                None,
            );
            out.events.push(Event::RemovedForBounces(rcpt.clone()));
        }
        out
    }

    /// A subscriber's bounce score now (decayed).
    pub fn bounce_score(&self, list: &str, rcpt: &Address, now: u64) -> f64 {
        let half = self
            .lists
            .get(list)
            .map_or(7 * 86_400, |l| l.settings.bounce_half_life);
        self.bounces
            .get(list)
            .and_then(|m| m.get(rcpt.key()))
            .map_or(0.0, |r| decayed(r.score, r.updated, now, half))
    }
}

pub(super) fn decayed(score: f64, since: u64, now: u64, half_life: u64) -> f64 {
    if now <= since || half_life == 0 {
        return score;
    }
    let halvings = (now - since) as f64 / half_life as f64;
    score * libm_exp2(-halvings)
}

pub(super) fn libm_exp2(x: f64) -> f64 {
    x.exp2()
}
