//! Publishing TXT records at the domain's primary server: RFC 2136 UPDATE
//! signed with TSIG (RFC 8945), shared by the signer (DKIM keys),
//! `ptt spf publish` and `ptt dmarc publish`.
//!
//! [`Updater::ensure_txt`] makes the records of one kind at one name (the
//! `v=spf1` record of a domain, the key record of a selector) say exactly
//! one value: nothing is sent when they already do (so a restart makes no
//! new serial), and an UPDATE is sent with a prerequisite naming the whole
//! TXT RRset it was computed from (RFC 2136 §2.4.2, or §2.4.3 "does not
//! exist" for an empty one), so a concurrent change makes the server
//! answer NXRRSET instead of being overwritten. Then the record is read
//! back from the primary. Only that one name is ever touched.

use std::path::Path;

use hickory_proto::op::update_message::UpdateMessage as _;
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::{TsigKey, Updater, fqdn, txt_joined, txt_strings};

/// What [`Updater::ensure_txt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// The record was already there, alone of its kind: nothing sent.
    Unchanged,
    /// There was none: added.
    Added,
    /// Others of its kind were replaced.
    Replaced,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Published::Unchanged => "unchanged",
            Published::Added => "added",
            Published::Replaced => "replaced",
        })
    }
}

impl TsigKey {
    /// Reads a key file as BIND's `tsig-keygen` writes it:
    /// `key "NAME" { algorithm hmac-sha256; secret "BASE64"; };`.
    pub(crate) fn from_bind_file(path: &Path) -> Result<TsigKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let field = |key: &str| -> Option<String> {
            let at = text.find(key)? + key.len();
            let rest = text[at..].trim_start();
            let end = rest.find(';')?;
            Some(rest[..end].trim().trim_matches('"').to_string())
        };
        let (Some(name), Some(algorithm), Some(secret)) =
            (field("key "), field("algorithm "), field("secret "))
        else {
            return Err(format!(
                "{}: not a tsig-keygen key file (key \"NAME\" {{ algorithm …; secret \"…\"; }};)",
                path.display()
            ));
        };
        let name = name
            .split('{')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"')
            .to_string();
        format!("{name}:{algorithm}:{secret}")
            .parse()
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Makes the TXT records at `name` for which `ours` is true say exactly
/// `value`, at the primary `server` (HOST:PORT) with the TSIG key `tsig`
/// (NAME:ALGORITHM:SECRET): what `ptt spf publish` and `ptt dmarc publish`
/// do. Gives the line to print.
pub(crate) async fn publish_txt(
    server: &str,
    tsig: &str,
    name: &str,
    ours: impl Fn(&[u8]) -> bool,
    value: &str,
    ttl: u32,
) -> Result<String, String> {
    let key: TsigKey = tsig.parse()?;
    let server = super::server_addr(server)?;
    let name = fqdn(name)?;
    let updater = Updater::connect(server, &key)?;
    let zone = updater.zone_of(&name).await?;
    let done = updater.ensure_txt(&zone, &name, ours, value, ttl).await?;
    Ok(format!(
        "published {name} TXT \"{value}\" in zone {zone} ({done})"
    ))
}

/// The message of a refused or unanswered UPDATE: the server's code, and
/// what it usually means.
fn explain(code: ResponseCode) -> String {
    let hint = match code {
        ResponseCode::NotAuth => " (the server does not accept this TSIG key for the zone)",
        ResponseCode::Refused => " (the zone's update policy refuses this key or name)",
        ResponseCode::NXRRSet | ResponseCode::YXRRSet => {
            " (the records changed meanwhile; read them again and retry)"
        }
        ResponseCode::NotZone => " (the name is not in the zone)",
        _ => "",
    };
    format!("{code}{hint}")
}

impl Updater {
    /// Makes the TXT records at `name` for which `ours` is true say exactly
    /// `value` (others at the name are left alone), then reads them back.
    pub(crate) async fn ensure_txt(
        &self,
        zone: &Name,
        name: &Name,
        ours: impl Fn(&[u8]) -> bool,
        value: &str,
        ttl: u32,
    ) -> Result<Published, String> {
        let add = TXT::new(txt_strings(value));
        let mut outcome = Published::Added;
        let mut assume_absent = false;
        for attempt in 0..3 {
            let current = self.txt(name).await?;
            let mine: Vec<&TXT> = current.iter().filter(|t| ours(&txt_joined(t))).collect();
            if mine.len() == 1 && txt_joined(mine[0]) == value.as_bytes() {
                // Already right (perhaps made so by another writer
                // between two attempts).
                return Ok(if attempt == 0 {
                    Published::Unchanged
                } else {
                    outcome
                });
            }
            let remove: Vec<TXT> = mine.into_iter().cloned().collect();
            outcome = if remove.is_empty() {
                Published::Added
            } else {
                Published::Replaced
            };
            let (prerequisite, remove) = if assume_absent {
                (&[][..], &[][..])
            } else {
                (current.as_slice(), remove.as_slice())
            };
            match self
                .update(zone, name, prerequisite, remove, Some(add.clone()), ttl)
                .await
            {
                Ok(()) => break,
                Err((Some(ResponseCode::NXRRSet | ResponseCode::YXRRSet), e)) if attempt < 2 => {
                    // The records changed meanwhile, or what was read was
                    // synthesized by a wildcard (a prerequisite never
                    // matches one): read again; when nothing changed,
                    // assume the name holds nothing of its own.
                    tracing::debug!(name = %name, "UPDATE prerequisite failed, reading again: {e}");
                    assume_absent = self.txt(name).await? == current;
                }
                Err((_, e)) => return Err(e),
            }
        }
        let after = self.txt(name).await?;
        let now: Vec<Vec<u8>> = after.iter().map(txt_joined).filter(|t| ours(t)).collect();
        if now != [value.as_bytes().to_vec()] {
            return Err(format!(
                "the UPDATE of {name} was accepted, but the primary now serves {} such record(s), not the one sent",
                now.len()
            ));
        }
        Ok(outcome)
    }

    /// Removes the TXT records at `name` for which `ours` is true; says
    /// whether there was any.
    pub(crate) async fn remove_txt(
        &self,
        zone: &Name,
        name: &Name,
        ours: impl Fn(&[u8]) -> bool,
    ) -> Result<bool, String> {
        let current = self.txt(name).await?;
        let remove: Vec<TXT> = current
            .iter()
            .filter(|t| ours(&txt_joined(t)))
            .cloned()
            .collect();
        if remove.is_empty() {
            return Ok(false);
        }
        self.update(zone, name, &current, &remove, None, 0)
            .await
            .map_err(|(_, e)| e)?;
        Ok(true)
    }

    /// One UPDATE of `zone` at `name`: the TXT RRset must still be
    /// `current`; `remove` goes, `add` comes.
    async fn update(
        &self,
        zone: &Name,
        name: &Name,
        current: &[TXT],
        remove: &[TXT],
        add: Option<TXT>,
        ttl: u32,
    ) -> Result<(), (Option<ResponseCode>, String)> {
        let mut zone_query = Query::new();
        zone_query
            .set_name(zone.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        message.add_zone(zone_query);
        if current.is_empty() {
            // RFC 2136 §2.4.3: the RRset does not exist.
            let mut absent = Record::update0(name.clone(), 0, RecordType::TXT);
            absent.dns_class = DNSClass::NONE;
            message.add_pre_requisite(absent);
        } else {
            // §2.4.2: the RRset exists and is exactly what was read.
            for txt in current {
                message.add_pre_requisite(Record::from_rdata(
                    name.clone(),
                    0,
                    RData::TXT(txt.clone()),
                ));
            }
        }
        for old in remove {
            let mut delete = Record::from_rdata(name.clone(), 0, RData::TXT(old.clone()));
            delete.dns_class = DNSClass::NONE;
            message.add_update(delete);
        }
        if let Some(add) = add {
            message.add_update(Record::from_rdata(name.clone(), ttl, RData::TXT(add)));
        }
        message
            .edns
            .get_or_insert_with(Edns::new)
            .set_max_payload(1232)
            .set_version(0);
        let response = self.exchange(message).await.map_err(|e| {
            let e = e.to_string();
            let text = if e.contains("HMAC") || e.contains("TSIG") || e.contains("tsig") {
                // hickory's words for an unsigned NOTAUTH/BADSIG answer.
                format!(
                    "UPDATE of {name} in {zone}: the server rejected the TSIG signature (NOTAUTH, BADSIG or BADKEY): [dns] tsig_key is not the key it has for this zone"
                )
            } else {
                format!("UPDATE of {name} in {zone}: no answer from the primary ({e})")
            };
            (None, text)
        })?;
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            code => Err((
                Some(code),
                format!(
                    "UPDATE of {name} in {zone}: the server answered {}",
                    explain(code)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsig_keygen_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(
            &path,
            "key \"upd-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n",
        )
        .unwrap();
        let key = TsigKey::from_bind_file(&path).unwrap();
        assert!(format!("{key:?}").contains("upd-key"));
        std::fs::write(&path, "nonsense").unwrap();
        assert!(TsigKey::from_bind_file(&path).is_err());
    }
}
