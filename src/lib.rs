//! prunescope: which audio tokens does an audio-language model attend to, and what does it say
//! when only some of them are kept?
//!
//! The pipeline, one module per stage:
//! `audio` (decode, resample, 30 s windows) -> `mel` (log-mel features) -> `model` (encoder with
//! received-attention scores, decoder over kept tokens) -> `prune` (selection rules, pure) ->
//! `engine` (runs every pruning setting of a clip; its worker is the model host the front ends
//! talk to) -> `remote` (the same host over a pipe: `prunescope serve --stdio` and its client)
//! -> `ui` (the explorer) and, in the binary, the command line. Beside them: `scores` (which encoder layer's scores, reduced over heads how,
//! drive the pruning: plain values `model` fills and `prune` is parameterised by, so `prune`
//! knows nothing of models), `eval` (datasets, metrics, reports), `document` (what was computed, opened again
//! without a model: analyses, workspaces, eval runs), `util` (median, temporary
//! folders).
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod audio;
pub mod document;
pub mod engine;
pub mod eval;
pub mod limits;
pub mod mel;
pub mod model;
pub mod prune;
pub mod remote;
pub mod scores;
#[cfg(feature = "gui")]
pub mod ui;
pub mod util;

/// Whisper's sample rate; every clip is resampled to it.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one 30 s encoder window.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// Mel frames hop.
pub const HOP: usize = 160;
/// Mel frames in one 30 s window.
pub const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP;
