//! One TCP connection on smoltcp, in clear or with rustls fed from and
//! into the socket's buffers (`read_tls` / `write_tls`): what the SMTP
//! machines read and write, with no std networking under it.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

/// What reading found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Bytes (plaintext).
    Data(Vec<u8>),
    /// Nothing yet.
    Nothing,
    /// The peer closed, or TLS failed (with why).
    Closed(Option<String>),
}

/// A connection.
pub(crate) struct Stream {
    pub(crate) handle: SocketHandle,
    /// Set once STARTTLS has begun.
    tls: Option<rustls::Connection>,
    /// Clear bytes waiting for room in the socket (sent before any TLS
    /// record, so a `220` to STARTTLS leaves in clear).
    clear_out: Vec<u8>,
}

impl Stream {
    pub(crate) fn new(handle: SocketHandle) -> Stream {
        Stream {
            handle,
            tls: None,
            clear_out: Vec::new(),
        }
    }

    /// Begins TLS as the server; bytes read from now on are TLS records.
    pub(crate) fn start_server_tls(
        &mut self,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<(), String> {
        let conn = rustls::ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
        self.tls = Some(conn.into());
        Ok(())
    }

    /// Whether TLS has begun and its handshake is done.
    pub(crate) fn tls_established(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| !t.is_handshaking())
    }

    /// Whether TLS has begun.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads what has come: clear bytes as they are, TLS records through
    /// rustls (its handshake goes on here too).
    pub(crate) fn read(&mut self, sockets: &mut SocketSet<'_>) -> Read {
        let socket = sockets.get_mut::<tcp::Socket>(self.handle);
        let Some(tls) = &mut self.tls else {
            let mut data = Vec::new();
            while socket.can_recv() {
                let got = socket.recv(|buf| {
                    data.extend_from_slice(buf);
                    (buf.len(), buf.len())
                });
                if !matches!(got, Ok(n) if n > 0) {
                    break;
                }
            }
            if !data.is_empty() {
                return Read::Data(data);
            }
            return if socket.may_recv() || socket.state() == tcp::State::SynReceived {
                Read::Nothing
            } else {
                Read::Closed(None)
            };
        };
        let mut fed = false;
        while socket.can_recv() && tls.wants_read() {
            let got = socket.recv(|buf| match tls.read_tls(&mut &buf[..]) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match got {
                Ok(Ok(n)) if n > 0 => fed = true,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => return Read::Closed(Some(format!("TLS: {e}"))),
                Err(_) => break,
            }
        }
        if fed && let Err(e) = tls.process_new_packets() {
            // The alert rustls queued goes out before the close.
            let _ = flush_tls(tls, socket);
            return Read::Closed(Some(format!("TLS: {e}")));
        }
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tls.reader().read(&mut chunk) {
                Ok(0) => {
                    if data.is_empty() {
                        return Read::Closed(None);
                    }
                    break;
                }
                Ok(n) => data.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Read::Closed(Some(format!("TLS: {e}"))),
            }
        }
        if !data.is_empty() {
            Read::Data(data)
        } else if !socket.may_recv() {
            Read::Closed(None)
        } else {
            Read::Nothing
        }
    }

    /// Queues `bytes` to send: encrypted once TLS has begun.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            Some(tls) => {
                // rustls keeps what it cannot send yet (no buffer limit is
                // set: the SMTP machines never write more than a reply or a
                // message that is already in memory).
                let _ = tls.writer().write_all(bytes);
            }
            None => self.clear_out.extend_from_slice(bytes),
        }
    }

    /// Moves what waits into the socket's send buffer, as room allows.
    pub(crate) fn flush(&mut self, sockets: &mut SocketSet<'_>) {
        let socket = sockets.get_mut::<tcp::Socket>(self.handle);
        if !self.clear_out.is_empty()
            && socket.can_send()
            && let Ok(n) = socket.send_slice(&self.clear_out)
        {
            self.clear_out.drain(..n);
        }
        if self.clear_out.is_empty()
            && let Some(tls) = &mut self.tls
        {
            let _ = flush_tls(tls, socket);
        }
    }

    /// Whether bytes wait to be sent (the socket's own buffer not counted).
    pub(crate) fn has_output(&self) -> bool {
        !self.clear_out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Ends the connection once what waits is sent: TLS's close_notify,
    /// then FIN.
    pub(crate) fn close(&mut self, sockets: &mut SocketSet<'_>) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
        self.flush(sockets);
        sockets.get_mut::<tcp::Socket>(self.handle).close();
    }
}

fn flush_tls(tls: &mut rustls::Connection, socket: &mut tcp::Socket<'_>) -> Result<(), String> {
    while tls.wants_write() && socket.can_send() {
        let wrote = socket.send(|buf| match tls.write_tls(&mut &mut buf[..]) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match wrote {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Err(e)) => return Err(e.to_string()),
            _ => break,
        }
    }
    Ok(())
}
