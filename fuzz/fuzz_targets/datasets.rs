//! The eval datasets' own files (ASR manifests in CSV and JSONL, Clotho, AudioCaps,
//! ClothoAQA CSVs, the MMAU JSON), the first byte choosing which, and eval results files.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::datasets(data));
