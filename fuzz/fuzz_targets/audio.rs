//! The audio front end on any bytes: WAV, FLAC, MP3, Ogg/Vorbis, M4A/AAC (our edit-list
//! reading included), the format from the content with the first byte choosing the name's
//! extension (a hint only). Every input decodes or is one `AudioError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = ["x.wav", "x.flac", "x.mp3", "x.ogg", "x.m4a", "x.bin"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let _ = prunescope::audio::load_bytes(bytes.to_vec(), std::path::Path::new(name));
});
