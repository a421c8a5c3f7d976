//! HTTPS fetches the mail services need: the MTA-STS policy of a domain
//! (RFC 8461 §3.3), read by the relay before delivering and by
//! `ptt dns check`. A plain HTTP/1.1 GET over tokio-rustls: one request,
//! `Connection: close`, no redirects (the RFC forbids following them).

use std::net::IpAddr;

use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

use crate::dns::{Lookup, Resolver};

/// GET `https://HOST/.well-known/mta-sts.txt` (RFC 8461 §3.3): the host
/// resolved through `resolver`, its certificate checked by `connector`,
/// no redirect followed, at most 64 KiB read, within 30 seconds.
pub(crate) async fn mta_sts_policy(
    resolver: &Resolver,
    connector: &TlsConnector,
    host: &str,
) -> Result<String, String> {
    let mut ips = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Lookup::Found(records) = resolver.lookup(host, rtype).await {
            ips.extend(records.iter().filter_map(|r| match r {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            }));
        }
    }
    let ip = *ips
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect((ip, 443))
            .await
            .map_err(|e| format!("connecting to {ip}:443: {e}"))?;
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ptt\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        let _ = stream.take(64 * 1024).read_to_end(&mut response).await;
        Ok::<Vec<u8>, String>(response)
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), fetch)
        .await
        .map_err(|_| format!("https://{host}: timed out"))??;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = &response[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("https://{host}/.well-known/mta-sts.txt: {status}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).replace("\r\n", "\n"))
}

/// The body of a chunked HTTP/1.1 response (bytes: a chunk may end inside
/// a character).
pub(crate) fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16) else {
            break;
        };
        let data = &rest[eol + 2..];
        let Some(chunk) = data.get(..n) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(chunk);
        rest = data.get(n..).unwrap_or_default();
        rest = rest.strip_prefix(b"\r\n").unwrap_or(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"7\r\nversion\r\n3\r\n: x\r\n0\r\n\r\n"),
            b"version: x".to_vec()
        );
        // A chunk that ends inside a character, and sizes that lie.
        assert_eq!(dechunk("1\r\n\u{e9}\r\n".as_bytes()), vec![0xc3]);
        assert!(dechunk(b"ff\r\nshort").is_empty());
        assert!(dechunk(b"zz\r\n").is_empty());
    }
}
