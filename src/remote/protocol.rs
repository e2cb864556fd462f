//! The messages of the remote model's protocol (docs/SPEC.md section 9). After its [`MAGIC`]
//! each side sends a [`Hello`]; the server then loads its model and sends [`ToClient::Ready`]
//! (or [`ToClient::Refused`] and exits). From then on the client sends [`ToServer`] messages and
//! the server answers with the worker's own [`Event`]s, each run's result as it finishes.
//!
//! [`MAGIC`]: super::frame::MAGIC

use serde::{Deserialize, Serialize};

use crate::engine::worker::{Decode, Event, OpenClip};
use crate::engine::LinkError;
use crate::model::ModelInfo;

/// The protocol's version: both sides must speak the same one.
pub const PROTOCOL: u32 = 1;

/// Each side's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The prunescope version that speaks it.
    pub version: String,
}

impl Hello {
    pub fn ours() -> Hello {
        Hello {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The mismatch error when the peer's hello is not of our protocol.
    pub fn check(&self) -> Result<(), LinkError> {
        if self.protocol == PROTOCOL {
            return Ok(());
        }
        let ours = Hello::ours();
        Err(LinkError::Version {
            ours: ours.protocol,
            theirs: self.protocol,
            our_version: ours.version,
            their_version: self.version.clone(),
        })
    }
}

/// What a served model can do, so a client can grey out what it cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// It takes a prompt (Qwen2-Audio, AF3): `promptaware` runs, the prompt matters.
    pub prompt: bool,
    /// Its language model's layers, where `fastv` ranks tokens inside it (None: Whisper, whose
    /// `fastv` ranks by its first decoding step).
    pub fastv_layers: Option<usize>,
    /// Its encoder's layers: the score sources it offers.
    pub encoder_layers: usize,
    /// Each run's attention from its output tokens to the audio, and its words.
    pub attention: bool,
}

impl Capabilities {
    pub fn of(info: &ModelInfo) -> Capabilities {
        Capabilities {
            prompt: info.prefix_lm,
            fastv_layers: info.lm_layers,
            encoder_layers: info.encoder_layers,
            attention: true,
        }
    }
}

/// The client's messages after its hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToServer {
    /// Decode and encode a clip (its file's bytes: `ClipSource::Bytes`).
    Open(OpenClip),
    /// Decode these runs of the clip last opened; results come back as each finishes.
    Decode(Decode),
    /// Stop the running decode at its next step.
    Cancel,
}

/// The server's messages after its hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToClient {
    /// The model is loaded: its description (label: name, device, dtype) and what it can do.
    Ready {
        info: ModelInfo,
        capabilities: Capabilities,
    },
    /// The server will not serve this client (another protocol, no model): why. It exits next.
    Refused(String),
    /// One of the worker's events (never a `ClipLoaded`: the client has the clip).
    Event(Event),
}
