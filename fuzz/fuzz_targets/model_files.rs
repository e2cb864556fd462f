//! A model folder with one file replaced by the input (the first byte says which):
//! `config.json`, `tokenizer.json`, the safetensors shard index, or a shard (its header and
//! tensors). The rest is the toy Audio Flamingo 3 of tests/data. Every input loads or is one
//! `ModelError`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::model_files(data));
