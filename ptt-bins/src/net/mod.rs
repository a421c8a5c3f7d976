//! Everything that carries bytes between hosts and services: the tokio
//! driver of the ptt-smtp machines ([`smtp`]), rustls configurations
//! ([`tls`]) and the private CA the services use between themselves
//! ([`pki`]), certificates obtained by ACME DNS-01 ([`acme`]), and the
//! HTTPS fetch of MTA-STS policies ([`https`]).

pub(crate) mod acme;
pub(crate) mod dane;
pub(crate) mod https;
pub(crate) mod pki;
pub(crate) mod smtp;
pub(crate) mod tls;
