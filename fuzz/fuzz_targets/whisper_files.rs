//! A Whisper folder in Hugging Face format with its `config.json`, `generation_config.json` or
//! `model.safetensors` replaced by the input (the first byte says which).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::whisper_files(data));
