//! The CTranslate2 `model.bin` reader: header, variables, aliases, and each variable's
//! values as f32. Every input is a model or one `Parsed` error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::ct2(data));
