//! Administration: what the `ptt` verbs change.

use super::*;

impl State {
    /// Creates a list (`ptt add`).
    pub fn create_list(
        &mut self,
        name: &str,
        domain: &str,
        secret: &[u8],
        moderators: &[Address],
        policy: Policy,
    ) -> Result<Changes, ListError> {
        check_list_name(name)?;
        crate::address::check_domain(domain).map_err(|why| ListError::Domain {
            input: domain.to_string(),
            why,
        })?;
        if self.lists.contains_key(name) {
            return Err(ListError::Exists(name.to_string()));
        }
        if moderators.is_empty() {
            return Err(ListError::LastModerator(name.to_string()));
        }
        let mut l = List::new(name, domain, secret);
        l.settings.policy = policy;
        l.settings.one_click_url = Some(format!("https://{}/lists/unsubscribe", l.domain));
        l.moderators.extend(moderators.iter().cloned());
        self.lists.insert(name.to_string(), l);
        Ok(Changes {
            lists: BTreeSet::from([name.to_string()]),
            bounces: true,
            ..Changes::default()
        })
    }

    /// The list `name` on `domain` (when given), for changing.
    pub fn list_mut(&mut self, name: &str, domain: Option<&str>) -> Result<&mut List, ListError> {
        match self.lists.get_mut(name) {
            Some(l) if domain.is_none_or(|d| d.eq_ignore_ascii_case(&l.domain)) => Ok(l),
            _ => Err(ListError::Unknown(name.to_string())),
        }
    }

    /// Adds moderators; returns how many were new.
    pub fn add_moderators(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
    ) -> Result<(usize, Changes), ListError> {
        let l = self.list_mut(name, domain)?;
        let n = who
            .iter()
            .filter(|a| l.moderators.insert((*a).clone()))
            .count();
        Ok((
            n,
            Changes {
                lists: BTreeSet::from([name.to_string()]),
                ..Changes::default()
            },
        ))
    }

    /// Removes moderators (never the last one).
    pub fn remove_moderators(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
    ) -> Result<Changes, ListError> {
        let l = self.list_mut(name, domain)?;
        for a in who {
            if !l.moderators.contains(a) {
                return Err(ListError::NotModerator {
                    list: name.to_string(),
                    address: a.to_string(),
                });
            }
        }
        if who.iter().collect::<BTreeSet<_>>().len() >= l.moderators.len() {
            return Err(ListError::LastModerator(name.to_string()));
        }
        for a in who {
            l.moderators.remove(a);
        }
        Ok(Changes {
            lists: BTreeSet::from([name.to_string()]),
            ..Changes::default()
        })
    }

    /// Subscribes or unsubscribes addresses directly (an administrator's
    /// act, no confirmation); returns how many changed.
    pub fn set_subscribed(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
        subscribed: bool,
    ) -> Result<(usize, Changes), ListError> {
        let l = self.list_mut(name, domain)?;
        let n = who
            .iter()
            .filter(|a| {
                if subscribed {
                    l.subscribers.insert((*a).clone())
                } else {
                    l.subscribers.remove(*a)
                }
            })
            .count();
        let mut c = Changes {
            lists: BTreeSet::from([name.to_string()]),
            ..Changes::default()
        };
        if !subscribed && let Some(b) = self.bounces.get_mut(name) {
            for a in who {
                c.bounces |= b.remove(a.key()).is_some();
            }
        }
        Ok((n, c))
    }
}
