//! RFC 8058 one-click unsubscription over HTTPS: the `List-Unsubscribe`
//! URL of every post, `…?list=NAME&address=ADDRESS&token=TOKEN`.
//!
//! - `POST` with `List-Unsubscribe=One-Click` in its body (what mail
//!   clients send) unsubscribes at once when the token is the list's HMAC
//!   of the address: `200`; a wrong token `403`, an unknown list `404`.
//! - `GET` unsubscribes nothing (link scanners follow links): it answers a
//!   page with a button that makes the `POST`.
//! - Anything else `405`. No redirects (RFC 8058 §3.1).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ptt_list::{ListError, Reply};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::Shared;
use super::outbound::send_notices;
use crate::service::trace::unix_now;

/// Connections served at once.
const CONNECTIONS: usize = 256;
/// The largest request body read.
const MAX_BODY: usize = 8 * 1024;
/// How long one connection may take, handshake included.
const CONNECTION_TIME: Duration = Duration::from_secs(30);

/// Accepts connections for ever.
pub(crate) async fn serve(listener: TcpListener, tls: TlsAcceptor, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(service = "lists", "accepting an HTTPS connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = tokio::time::timeout(CONNECTION_TIME, async {
                let stream = tls.accept(tcp).await.map_err(|e| e.to_string())?;
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(answer(req, &shared).await) }
                });
                hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match served {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(service = "lists", %peer, "HTTPS: {e}"),
                Err(_) => tracing::debug!(service = "lists", %peer, "HTTPS: timed out"),
            }
        });
    }
}

/// `%XX` decoded (`+` stays: the URLs we make encode it).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `list`, `address` and `token` of the query.
fn parameters(query: &str) -> Option<(String, String, String)> {
    let (mut list, mut address, mut token) = (None, None, None);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=')?;
        let v = percent_decode(v)?;
        match k {
            "list" => list = Some(v),
            "address" => address = Some(v),
            "token" => token = Some(v),
            _ => {}
        }
    }
    Some((list?, address?, token?))
}

fn page(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn answer(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let Some((list, address, token)) = parameters(&query) else {
        return page(
            StatusCode::BAD_REQUEST,
            "this is the one-click unsubscription of a mailing list: the link needs list, address and token",
        );
    };
    match *req.method() {
        Method::GET | Method::HEAD => {
            let action = escape_html(&req.uri().to_string());
            let body = format!(
                "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
                 <p>Unsubscribe {} from {}?</p>\
                 <form method=post action=\"{action}\">\
                 <input type=hidden name=List-Unsubscribe value=One-Click>\
                 <button>Unsubscribe</button></form>\n",
                escape_html(&address),
                escape_html(&list)
            );
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return page(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            };
            let text = String::from_utf8_lossy(&body);
            if !text.contains("One-Click") {
                return page(
                    StatusCode::BAD_REQUEST,
                    "the body must hold List-Unsubscribe=One-Click (RFC 8058)",
                );
            }
            unsubscribe(shared, list, address, token).await
        }
        _ => {
            let mut r = page(StatusCode::METHOD_NOT_ALLOWED, "use POST");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD, POST"),
            );
            r
        }
    }
}

async fn unsubscribe(
    shared: &Arc<Shared>,
    list: String,
    address: String,
    token: String,
) -> Response<Full<Bytes>> {
    let s = shared.clone();
    let (l, a) = (list.clone(), address.clone());
    let now = unix_now();
    let done = tokio::task::spawn_blocking(move || {
        s.state.change(
            |state| match state.one_click(now, &super::entropy(), &l, &a, &token) {
                Ok(out) => {
                    let changes = out.changes.clone();
                    (Ok(out), changes)
                }
                Err(e) => (Err(e), Default::default()),
            },
        )
    })
    .await;
    let out = match done {
        Ok(Ok(Ok(out))) => out,
        Ok(Ok(Err(ListError::Unknown(_)))) => {
            return page(StatusCode::NOT_FOUND, "no such list");
        }
        Ok(Ok(Err(e))) => return page(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(service = "lists", "one-click: list state: {e}");
            return page(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
        Err(_) => return page(StatusCode::INTERNAL_SERVER_ERROR, "try again later"),
    };
    if let Reply::Reject { .. } = out.reply {
        tracing::info!(
            service = "lists",
            list,
            address,
            "one-click refused: bad token"
        );
        return page(StatusCode::FORBIDDEN, "this link is not valid");
    }
    tracing::info!(service = "lists", list, address, events = ?out.events, "one-click unsubscription");
    for why in send_notices(shared, &out.send).await {
        tracing::warn!(service = "lists", "a notice waits: {why}");
    }
    page(
        StatusCode::OK,
        &format!("{address} is no longer subscribed to {list}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_of_our_urls_is_read_back() {
        let q = "list=ptt-dev&address=a%2Btag%40example.net&token=AbC-_d";
        assert_eq!(
            parameters(q),
            Some((
                "ptt-dev".into(),
                "a+tag@example.net".into(),
                "AbC-_d".into()
            ))
        );
        assert_eq!(parameters("list=x&address=a%4"), None);
        assert_eq!(parameters("list=x&token=t"), None);
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
    }
}
