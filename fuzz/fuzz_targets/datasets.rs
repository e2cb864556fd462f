//! The eval datasets' own files (ASR manifests in CSV and JSONL, Clotho, AudioCaps,
//! ClothoAQA CSVs, the MMAU JSON), the first byte choosing which, and eval results files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prunescope::eval::datasets::{load, DatasetKind};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let (kind, name) = match pick % 7 {
        0 => ("asr", "manifest.csv"),
        1 => ("asr", "manifest.jsonl"),
        2 => ("clotho", "clotho_captions_evaluation.csv"),
        3 => ("audiocaps", "test.csv"),
        4 => ("clothoaqa", "clotho_aqa_test.csv"),
        5 => ("mmau", "mmau-test-mini.json"),
        _ => {
            let p = common::scratch("results.jsonl", bytes);
            let _ = prunescope::eval::runner::read_results(&p);
            return;
        }
    };
    let p = common::scratch(name, bytes);
    let _ = load(DatasetKind::parse(kind).expect("a known kind"), &p);
});
