//! The command addresses: help, the roster, subscription requests and
//! their confirmation, the moderators' decisions. [`State::handle`] routes
//! each address to one of these, after [`State::command`] has checked who
//! asks.

use super::*;

impl State {
    /// A command from `input`: never answered for bounces or automatic
    /// mail; the requester is the author (From), else the sender.
    pub(super) fn command(
        &mut self,
        ctx: &mut Ctx<'_>,
        input: &Incoming<'_>,
        raw: &Raw,
        act: impl FnOnce(&mut State, &mut Ctx<'_>, &Address) -> Output,
    ) -> Output {
        if input.mail_from.is_empty() || is_auto(raw) {
            return Output::dropped("automatic mail to a command address");
        }
        let requester = author(input.data)
            .map(|(a, _)| a)
            .or_else(|| Address::parse(input.mail_from).ok());
        let Some(requester) = requester else {
            return Output::reject(550, "5.1.7", "no usable sender address");
        };
        act(self, ctx, &requester)
    }

    /// `NAME-help`: the list's help, to the requester.
    pub(super) fn help(&mut self, ctx: &mut Ctx<'_>, name: &str, requester: &Address) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        out.send.push(notice(
            ctx,
            list,
            &Role::Help,
            &to,
            &format!("Help for {}", list.post_address()),
            &help_text(list),
            None,
        ));
        out.events.push(Event::Answered("help"));
        out
    }

    /// `NAME-subscribers`: the roster, to whom the list shows it.
    pub(super) fn roster(&mut self, ctx: &mut Ctx<'_>, name: &str, requester: &Address) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        let allowed = match list.settings.subscribers_visible {
            Visibility::Nobody => false,
            Visibility::Moderators => list.is_moderator(requester),
            Visibility::Subscribers => {
                list.is_moderator(requester) || list.is_subscriber(requester)
            }
        };
        let body = if allowed {
            let mut b = format!(
                "Subscribers of {} ({}):\n",
                list.post_address(),
                list.subscribers.len()
            );
            for s in &list.subscribers {
                b.push_str(&s.to_string());
                b.push('\n');
            }
            b
        } else {
            "The roster of this list is not available to you.\n".to_string()
        };
        out.send.push(notice(
            ctx,
            list,
            &Role::Help,
            &to,
            &format!("Subscribers of {}", list.post_address()),
            &body,
            None,
        ));
        out.events.push(Event::Answered(if allowed {
            "roster"
        } else {
            "roster refused"
        }));
        out
    }

    /// `NAME-subscribe`, `NAME-unsubscribe`: a confirmation asked of the
    /// requester (or, with nothing to change, a word saying so).
    pub(super) fn request(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        change: Change,
        requester: &Address,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        let member = list.is_subscriber(requester);
        if (change == Change::Subscribe) == member {
            let text = if member {
                format!("{to} is already subscribed to {}.\n", list.post_address())
            } else {
                format!("{to} is not subscribed to {}.\n", list.post_address())
            };
            out.send.push(notice(
                ctx,
                list,
                &Role::Help,
                &to,
                &format!("Your request to {}", list.post_address()),
                &text,
                None,
            ));
            out.events.push(Event::Answered("nothing to change"));
            return out;
        }
        let token = ctx.entropy.token();
        let expires = ctx.now + list.settings.confirm_expiry;
        let confirm = Role::Confirm(token.clone());
        let what = if change == Change::Subscribe {
            "subscribe to"
        } else {
            "unsubscribe from"
        };
        let body = format!(
            "Someone, maybe you, asked to {what} {} for {to}.\n\n\
             To confirm, reply to this message, or write to {}.\n\
             If you did not ask, ignore this message: nothing changes.\n",
            list.post_address(),
            list.role_address(&confirm),
        );
        let subject = format!("Confirm: {what} {} ({token})", list.post_address());
        out.send
            .push(notice(ctx, list, &confirm, &to, &subject, &body, None));
        let Some(list) = self.lists.get_mut(name) else {
            return out;
        };
        list.pending.retain(|p| {
            !(p.address == *requester && p.change == change && p.stage == Stage::Confirmation)
        });
        list.pending.push(Pending {
            token: token.clone(),
            address: requester.clone(),
            change,
            stage: Stage::Confirmation,
            expires,
        });
        out.changes.lists.insert(name.to_string());
        out.events.push(Event::Pending {
            list: name.to_string(),
            token,
            stage: Stage::Confirmation,
        });
        out
    }

    /// `NAME-confirm-TOKEN`: the requester confirmed; the change is made,
    /// or (moderated subscriptions) passed to the moderators.
    pub(super) fn confirm(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        token: &str,
        requester: &Address,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        let found = list.pending.iter().position(|p| {
            p.token == token && p.stage == Stage::Confirmation && p.expires > ctx.now
        });
        let Some(i) = found else {
            out.send.push(notice(
                ctx,
                list,
                &Role::Help,
                &to,
                "Unknown or expired confirmation",
                "This confirmation is unknown or has expired; please ask again.\n",
                None,
            ));
            out.events.push(Event::Answered("unknown token"));
            return out;
        };
        let moderated = list.settings.subscription_moderated;
        let hold_expiry = list.settings.hold_expiry;
        let Some(list) = self.lists.get_mut(name) else {
            return out;
        };
        let mut p = list.pending.remove(i);
        out.changes.lists.insert(name.to_string());
        if p.change == Change::Subscribe && moderated {
            p.stage = Stage::Moderator;
            p.expires = ctx.now + hold_expiry;
            let token = p.token.clone();
            let addr = p.address.clone();
            list.pending.push(p);
            let list = &self.lists[name];
            let body = format!(
                "{addr} asks to join {} and confirmed the address.\n\n\
                 To accept, write to {}\nTo refuse, write to {}\n",
                list.post_address(),
                list.role_address(&Role::Accept(token.clone())),
                list.role_address(&Role::Reject(token.clone())),
            );
            out.send = to_moderators(
                ctx,
                list,
                &format!("Subscription request for {}: {addr}", list.post_address()),
                &body,
                None,
            );
            out.send.push(notice(
                ctx,
                list,
                &Role::Help,
                &addr.to_string(),
                &format!("Your subscription to {}", list.post_address()),
                "Your address is confirmed; a moderator will now review the request.\n",
                None,
            ));
            out.events.push(Event::Pending {
                list: name.to_string(),
                token,
                stage: Stage::Moderator,
            });
        } else {
            out.merge_from(self.apply_change(ctx, name, p.change, &p.address));
        }
        out
    }

    /// `NAME-accept-TOKEN`, `NAME-reject-TOKEN`: a moderator's decision
    /// on a held post or a subscription.
    pub(super) fn decide(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        token: &str,
        accept: bool,
        requester: &Address,
        mail_from: &str,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        if !list.is_moderator(requester)
            && !Address::parse(mail_from).is_ok_and(|a| list.is_moderator(&a))
        {
            return Output::dropped("accept/reject from someone who is not a moderator");
        }
        if let Some(i) = list.held.iter().position(|h| h.token == token) {
            let Some(list) = self.lists.get_mut(name) else {
                return out;
            };
            let h = list.held.remove(i);
            let blob = held_blob(&h.token);
            let data = self.blobs.remove(&blob);
            out.changes.lists.insert(name.to_string());
            out.changes.blobs_removed.insert(blob);
            match (accept, data) {
                (true, Some(data)) => {
                    let mut posted = self.post(name, &data, h.author_policy);
                    posted.changes.merge(core::mem::take(&mut out.changes));
                    return posted;
                }
                _ => out.events.push(Event::Dropped {
                    reason: "held post rejected by a moderator",
                }),
            }
        } else if let Some(i) = list
            .pending
            .iter()
            .position(|p| p.token == token && p.stage == Stage::Moderator)
        {
            let Some(list) = self.lists.get_mut(name) else {
                return out;
            };
            let p = list.pending.remove(i);
            out.changes.lists.insert(name.to_string());
            if accept {
                out.merge_from(self.apply_change(ctx, name, p.change, &p.address));
            } else {
                let list = &self.lists[name];
                out.send.push(notice(
                    ctx,
                    list,
                    &Role::Help,
                    &p.address.to_string(),
                    &format!("Your subscription to {}", list.post_address()),
                    "A moderator declined your subscription request.\n",
                    None,
                ));
                out.events.push(Event::Answered("subscription declined"));
            }
        } else {
            out.send.push(notice(
                ctx,
                list,
                &Role::Help,
                &to,
                "Unknown or expired token",
                "Nothing waits under this token (already decided, or expired).\n",
                None,
            ));
            out.events.push(Event::Answered("unknown token"));
        }
        out
    }

    pub(super) fn apply_change(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        change: Change,
        address: &Address,
    ) -> Output {
        let mut out = Output::accept();
        let Some(list) = self.lists.get_mut(name) else {
            return out;
        };
        out.changes.lists.insert(name.to_string());
        let (subject, body, event) = match change {
            Change::Subscribe => {
                list.subscribers.insert(address.clone());
                (
                    "Welcome",
                    format!("Welcome to {}.\n\n{}", list.post_address(), help_text(list)),
                    Event::Subscribed(address.clone()),
                )
            }
            Change::Unsubscribe => {
                list.subscribers.remove(address);
                (
                    "Goodbye",
                    format!(
                        "{address} is no longer subscribed to {}.\n",
                        list.post_address()
                    ),
                    Event::Unsubscribed(address.clone()),
                )
            }
        };
        if let Some(b) = self.bounces.get_mut(name)
            && b.remove(address.key()).is_some()
        {
            out.changes.bounces = true;
        }
        let list = &self.lists[name];
        out.send.push(notice(
            ctx,
            list,
            &Role::Help,
            &address.to_string(),
            &format!("{subject}: {}", list.post_address()),
            &body,
            None,
        ));
        out.events.push(event);
        out
    }
}
