//! The integration tests, one binary (candle and the rest link once): the library through its
//! API and the `prunescope` binary through its command line. The GUI (`tests/ui.rs`) and
//! playback (`tests/playback.rs`) tests run in processes of their own.
#![allow(clippy::too_many_lines)]

#[path = "../common/mod.rs"]
mod common;

mod alm;
mod alm_cli;
mod audio;
mod cli;
mod decoding;
mod eval_cli;
mod eval_datasets;
mod eval_embed;
mod eval_metrics;
mod eval_report;
mod eval_runner;
mod formats;
mod fuzz_corpus;
mod golden;
mod layers;
mod mel;
mod peers;
mod remote;
mod words;
