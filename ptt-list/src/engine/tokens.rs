//! RFC 8058 one-click unsubscription: the HMAC token of an address on a
//! list, and its check.

use super::*;

/// The one-click token of `address` on `list`: HMAC-SHA256 keyed by the
/// list's secret over the list name and the lower-cased address, 128 bits in
/// unpadded base64url. Verifiable without storing anything.
pub fn one_click_token(list: &List, address: &Address) -> String {
    String::from_utf8_lossy(&token_bytes(prefixed_mac(list), address)).into_owned()
}

pub(super) fn keyed_mac(list: &List) -> Hmac<Sha256> {
    let key = decode_hex(&list.secret);
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| {
        <Hmac<Sha256> as Mac>::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    })
}

/// The list's keyed MAC already fed with the part of the message that is
/// the same for every subscriber.
pub(super) fn prefixed_mac(list: &List) -> Hmac<Sha256> {
    let mut mac = keyed_mac(list);
    mac.update(b"ptt-list one-click\0");
    mac.update(list.name.as_bytes());
    mac.update(b"\0");
    mac
}

pub(super) fn token_bytes(mut prefixed: Hmac<Sha256>, address: &Address) -> [u8; 22] {
    use base64::Engine as _;
    prefixed.update(address.key().as_bytes());
    let tag = prefixed.finalize().into_bytes();
    let mut out = [0u8; 22];
    let _ = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(tag.get(..16).unwrap_or_default(), &mut out);
    out
}

pub(super) fn decode_hex(s: &str) -> Vec<u8> {
    let v = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| (p.first().map_or(0, |&c| v(c)) << 4) | p.get(1).map_or(0, |&c| v(c)))
        .collect()
}

pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl State {
    /// RFC 8058 one-click unsubscription (the HTTPS POST the web front end
    /// receives): checks the token and removes the address, no confirmation.
    pub fn one_click(
        &mut self,
        now: u64,
        entropy: &Entropy,
        list: &str,
        address: &str,
        token: &str,
    ) -> Result<Output, ListError> {
        let l = self
            .lists
            .get(list)
            .ok_or_else(|| ListError::Unknown(list.to_string()))?;
        let a = Address::parse(address)?;
        let want = one_click_token(l, &a);
        if !ct_eq(want.as_bytes(), token.as_bytes()) {
            let mut o = Output::reject(403, "5.7.1", "bad one-click token");
            o.events.push(Event::Dropped {
                reason: "bad one-click token",
            });
            return Ok(o);
        }
        if !l.is_subscriber(&a) {
            return Ok(Output::dropped(
                "one-click for an address that is not subscribed",
            ));
        }
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        Ok(self.apply_change(&mut ctx, list, Change::Unsubscribe, &a))
    }
}
