//! The playback path through cpal and ALSA, on the ALSA `null` device (no sound card needed):
//! the stream opens, the callback consumes the clip from the requested position and stops at
//! the requested end. Its own test binary because HOME must point at the `.asoundrc` before
//! ALSA is first touched.
#![allow(clippy::too_many_lines)]
#![cfg(all(feature = "gui", target_os = "linux"))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prunescope::ui::audio_out::AudioOut;

#[test]
fn plays_a_selection_on_the_alsa_null_device() {
    let home = common::TempDir::new();
    std::fs::write(
        home.0.join(".asoundrc"),
        "pcm.!default { type null }\nctl.!default { type hw card 0 }\n",
    )
    .unwrap();
    std::env::set_var("HOME", &home.0);

    let out = AudioOut::open().expect("the ALSA null device opens");
    let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.1).sin() * 0.2).collect();
    out.set_clip(Arc::new(tone));
    out.play(0.25, 0.75);
    assert!(out.position().1, "playing right after play()");
    let start = Instant::now();
    while out.position().1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (pos, playing) = out.position();
    assert!(!playing, "the selection ends by itself");
    assert!(
        (0.70..=0.76).contains(&pos),
        "stopped at the selection's end, not {pos}"
    );
    out.stop();
}
