//! Sound output with cpal: the device callback reads the clip's 16 kHz samples from a shared
//! buffer at a position the UI sets, resampling linearly to the device rate. The UI's
//! [`super::timeline::Playback`] stays the source of truth; this only follows it and reports
//! how far it got.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::SAMPLE_RATE;

#[derive(Default)]
struct Shared {
    samples: Mutex<Arc<Vec<f32>>>,
    /// Read position in 16 kHz samples, as f64 bits.
    position: AtomicU64,
    /// Stop position in 16 kHz samples, as f64 bits.
    end: AtomicU64,
    playing: AtomicBool,
}

/// Why there is no sound output; the explorer says "audio output unavailable (…)".
#[derive(Debug, thiserror::Error)]
pub enum AudioOutError {
    #[error("no output device")]
    NoDevice,
    #[error("{0}")]
    Device(#[from] cpal::Error),
}

/// An open output stream. Dropping it stops the sound.
pub struct AudioOut {
    _stream: cpal::Stream,
    shared: Arc<Shared>,
}

impl AudioOut {
    /// Opens the default output device. Any error (no device, no usable configuration) means
    /// "audio output unavailable"; the message says why.
    pub fn open() -> Result<AudioOut, AudioOutError> {
        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .ok_or(AudioOutError::NoDevice)?;
        let config = device.default_output_config()?.config();
        let channels = usize::from(config.channels.max(1));
        let step = f64::from(SAMPLE_RATE) / f64::from(config.sample_rate.max(1));
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let stream = device.build_output_stream::<f32, _, _>(
            config,
            move |out: &mut [f32], _| fill(&s, out, channels, step),
            |_| {},
            None,
        )?;
        stream.play()?;
        Ok(AudioOut {
            _stream: stream,
            shared,
        })
    }

    pub fn set_clip(&self, samples: Arc<Vec<f32>>) {
        self.stop();
        if let Ok(mut s) = self.shared.samples.lock() {
            *s = samples;
        }
    }

    /// Plays from `from` to `to` (seconds).
    pub fn play(&self, from: f64, to: f64) {
        let rate = f64::from(SAMPLE_RATE);
        self.shared
            .position
            .store((from * rate).to_bits(), Ordering::SeqCst);
        self.shared
            .end
            .store((to * rate).to_bits(), Ordering::SeqCst);
        self.shared.playing.store(true, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.shared.playing.store(false, Ordering::SeqCst);
    }

    /// Where the device is (seconds), and whether it is still playing.
    pub fn position(&self) -> (f64, bool) {
        let p = f64::from_bits(self.shared.position.load(Ordering::SeqCst));
        (
            p / f64::from(SAMPLE_RATE),
            self.shared.playing.load(Ordering::SeqCst),
        )
    }
}

/// The device callback: never blocks (a busy lock plays silence for one buffer).
fn fill(s: &Shared, out: &mut [f32], channels: usize, step: f64) {
    let guard = s.samples.try_lock();
    let samples: &[f32] = match &guard {
        Ok(g) => g.as_slice(),
        Err(_) => &[],
    };
    let was_playing = s.playing.load(Ordering::SeqCst);
    let start_bits = s.position.load(Ordering::SeqCst);
    let mut pos = f64::from_bits(start_bits);
    let end = f64::from_bits(s.end.load(Ordering::SeqCst)).min(samples.len() as f64);
    let mut playing = was_playing;
    for frame in out.chunks_mut(channels) {
        let v = if playing && pos < end - 1.0 {
            let i = pos as usize;
            let f = (pos - i as f64) as f32;
            let v = samples[i] * (1.0 - f) + samples[i + 1] * f;
            pos += step;
            v
        } else {
            playing = false;
            0.0
        };
        frame.fill(v);
    }
    // Write back only what this buffer played from the state it read: a `play()` that landed
    // meanwhile (new position) wins, instead of being overwritten by this stale buffer.
    if was_playing
        && s.position
            .compare_exchange(
                start_bits,
                pos.to_bits(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        && !playing
    {
        s.playing.store(false, Ordering::SeqCst);
    }
}
