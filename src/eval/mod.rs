//! `prunescope eval`: the paper's tables for any model the tool runs. Datasets are read from
//! their published files (`datasets`), every clip is encoded once and decoded under every
//! pruning setting (`runner`, resumable JSONL, shardable), predictions are scored (`metrics`,
//! pure and checked against pycocoevalcap and jiwer; MMAU answers that name no option are matched
//! by sentence embeddings, `embed`) and laid out like the paper (`report`).

pub mod by_clip;
pub mod datasets;
pub mod embed;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod runner;
