//! The audio front end on any bytes: WAV, FLAC, MP3, Ogg/Vorbis, M4A/AAC (our edit-list
//! reading included), the format from the content with the first byte choosing the name's
//! extension (a hint only). Every input decodes or is one `AudioError`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prunescope_fuzz::audio(data));
