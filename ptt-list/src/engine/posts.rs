//! Posts to the list address: sent out, or held for the moderators.

use super::*;

impl State {
    pub(super) fn on_post(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        raw: &Raw,
        input: &Incoming<'_>,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let list_id = format!("<{}.{}>", list.name, list.domain);
        let post_addr = list.post_address();
        if raw
            .all("List-Id")
            .any(|f| f.value().to_ascii_lowercase().contains(&list_id))
            || raw
                .all("X-Loop")
                .any(|f| f.value().eq_ignore_ascii_case(&post_addr))
        {
            return Output::dropped("loop: the message already went through this list");
        }
        if input.mail_from.is_empty() {
            return Output::dropped("bounce sent to the post address");
        }
        let Some((author, _)) = author(input.data) else {
            return Output::reject(550, "5.6.0", "no usable From address");
        };
        let reason = if input.auth.dmarc_fail && input.auth.author_policy == DmarcPolicy::Reject {
            Some(HoldReason::DmarcReject)
        } else if list.is_moderator(&author) {
            None
        } else {
            match list.settings.policy {
                Policy::Open => None,
                Policy::Subscribers if list.is_subscriber(&author) => None,
                Policy::Subscribers => Some(HoldReason::NotSubscribed),
                Policy::Moderated => Some(HoldReason::Moderated),
            }
        };
        match reason {
            None => self.post(name, input.data, input.auth.author_policy),
            Some(reason) => {
                let subject = raw.get("Subject").map(|f| f.value()).unwrap_or_default();
                self.hold(
                    ctx,
                    name,
                    author,
                    subject,
                    reason,
                    input.auth.author_policy,
                    input.data,
                )
            }
        }
    }

    pub(super) fn post(&mut self, name: &str, data: &[u8], policy: DmarcPolicy) -> Output {
        let Some(list) = self.lists.get_mut(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        list.counter += 1;
        let fan = plan_post(list, list.counter, data, policy);
        let mut out = Output::accept();
        out.changes.lists.insert(name.to_string());
        out.events.push(Event::Posted {
            list: name.to_string(),
            post: list.counter,
        });
        out.fanout = Some(fan);
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        author: Address,
        subject: String,
        reason: HoldReason,
        author_policy: DmarcPolicy,
        data: &[u8],
    ) -> Output {
        let Some(list) = self.lists.get_mut(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let token = ctx.entropy.token();
        let blob = held_blob(&token);
        list.held.push(Held {
            token: token.clone(),
            author: author.clone(),
            subject: subject.clone(),
            reason,
            author_policy,
            expires: ctx.now + list.settings.hold_expiry,
        });
        self.blobs.insert(blob.clone(), data.to_vec());
        let list = &self.lists[name];
        let mut out = Output::accept();
        out.changes.lists.insert(name.to_string());
        out.changes.blobs_put.insert(blob);
        if reason != HoldReason::DmarcReject {
            let why = match reason {
                HoldReason::NotSubscribed => "the author is not subscribed",
                _ => "the list is moderated",
            };
            let body = format!(
                "A post to {} from {author} is held: {why}.\nSubject: {subject}\n\n\
                 To send it to the list, write to {}\nTo discard it, write to {}\n\
                 It is discarded by itself in {} days.\n",
                list.post_address(),
                list.role_address(&Role::Accept(token.clone())),
                list.role_address(&Role::Reject(token.clone())),
                list.settings.hold_expiry / 86_400,
            );
            out.send = to_moderators(
                ctx,
                list,
                &format!("Held post to {}: {subject}", list.post_address()),
                &body,
                Some(data),
            );
        }
        out.events.push(Event::Held {
            list: name.to_string(),
            token,
            reason,
        });
        out
    }
}
