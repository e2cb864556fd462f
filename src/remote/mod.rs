//! The model on another machine: `prunescope serve --stdio` speaks the worker's requests and
//! events over its stdin and stdout ([`server`]), and [`Remote`] is a [`ModelHost`] that
//! starts a command (`ssh gpu-host prunescope serve --stdio ...`) and speaks to it
//! ([`client`]), so the explorer and the command line use a remote model exactly as a local
//! one. Nothing listens on a port: the transport is the command, so ssh brings its own
//! authentication and encryption. The framing is in [`frame`], the messages in [`protocol`]
//! (docs/SPEC.md section 9).
//!
//! [`ModelHost`]: crate::engine::ModelHost

pub mod client;
pub mod frame;
pub mod protocol;
pub mod server;

pub use client::{LinkStats, Remote, RemoteOptions};
pub use protocol::{Capabilities, Hello, PROTOCOL};
pub use server::{serve, ServeError};
