//! The messages the list writes itself: confirmations, help, mail to the
//! moderators.

use super::*;

pub(super) fn notice(
    ctx: &mut Ctx<'_>,
    list: &List,
    from_role: &Role,
    to: &str,
    subject: &str,
    body: &str,
    attach: Option<&[u8]>,
) -> Outgoing {
    let from = list.role_address(from_role);
    let reply_to = matches!(from_role, Role::Confirm(_)).then_some(from.as_str());
    let n = Notice {
        from: &from,
        to,
        subject,
        reply_to,
        message_id: ctx.message_id(&list.domain),
        date: ctx.now,
        body,
        attach,
    };
    Outgoing {
        mail_from: String::new(),
        rcpts: alloc::vec![to.to_string()],
        data: n.to_bytes(),
    }
}

pub(super) fn to_moderators(
    ctx: &mut Ctx<'_>,
    list: &List,
    subject: &str,
    body: &str,
    attach: Option<&[u8]>,
) -> Vec<Outgoing> {
    list.moderators
        .iter()
        .map(|m| {
            notice(
                ctx,
                list,
                &Role::Owner,
                &m.to_string(),
                subject,
                body,
                attach,
            )
        })
        .collect()
}

pub(super) fn help_text(list: &List) -> String {
    let a = |r: Role| list.role_address(&r);
    format!(
        "This is the list {post}{desc}.\n\n\
         To post, write to {post}.\n\
         To subscribe, write to {sub}.\n\
         To unsubscribe, write to {unsub}.\n\
         For the list of subscribers, write to {subs}.\n\
         To reach the moderators, write to {owner}.\n",
        post = list.post_address(),
        desc = if list.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", list.description)
        },
        sub = a(Role::Subscribe),
        unsub = a(Role::Unsubscribe),
        subs = a(Role::Subscribers),
        owner = a(Role::Owner),
    )
}

pub(super) fn is_auto(raw: &Raw) -> bool {
    raw.get("Auto-Submitted")
        .is_some_and(|f| !f.value().eq_ignore_ascii_case("no"))
        || raw.get("Precedence").is_some_and(|f| {
            matches!(
                f.value().to_ascii_lowercase().as_str(),
                "bulk" | "list" | "junk"
            )
        })
}
