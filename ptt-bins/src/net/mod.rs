//! Everything that carries bytes between hosts and services: the tokio
//! driver of the ptt-smtp machines ([`smtp`]), rustls configurations
//! ([`tls`]) and the private CA the services use between themselves
//! ([`pki`]), and certificates obtained by ACME DNS-01 ([`acme`]).

pub(crate) mod acme;
pub(crate) mod pki;
pub(crate) mod smtp;
pub(crate) mod tls;
