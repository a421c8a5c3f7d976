//! ptt-list: see the README; this crate is being built under its issue.
#![no_std]
