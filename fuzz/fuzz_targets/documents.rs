//! What `prunescope open` reads: analyses, workspaces (with their embedded clip) and eval
//! results files, told apart by their content; and a document's clip located.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::documents(data));
