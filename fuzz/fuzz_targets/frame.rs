//! The remote protocol as the client and the server read it: the magic, then frames of any
//! message either side sends. Every input is an error or a message; nothing panics or
//! allocates past the frame limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::frame(data));
