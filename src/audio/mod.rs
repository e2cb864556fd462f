//! Audio decoding, downmix, resampling to 16 kHz and 30 s windows (SPEC.md section 1), and the
//! valid-token counts of a window (SPEC.md section 2).
//!
//! `load` is the one entry point the pipeline needs: it decodes any common file (wav with PCM,
//! float or ADPCM samples, flac, mp3, ogg/vorbis, m4a/mp4 with AAC or ALAC, mkv/webm with those
//! codecs; not opus), takes the mean of the channels, resamples to [`SAMPLE_RATE`] with a
//! band-limited FFT resampler whose delay is compensated, and refuses audio the model cannot use
//! (nothing decoded, NaN or infinite samples, digital silence). Encoder delay and padding are
//! trimmed (MP3 gapless info, the MP4 edit list), so every format lines up with the original.
//!
//! The format is found from the file's content, never from its extension: an MP3 renamed `.wav`
//! decodes, a text file named `.wav` is "not an audio file this tool can read".
//!
//! Truncated files: a stream that ends early (the header promises more data than the file holds,
//! or the last packet is cut) keeps every sample decoded up to the cut, as ffmpeg and sox do. A
//! recording interrupted mid-write is still worth analysing, and the clip's duration shows what
//! was kept. A file that ends before any audio could be decoded is [`AudioError::Truncated`].
//! Damage inside a stream is different: a packet the codec rejects is skipped (as every player
//! does), but a container that stops making sense mid-stream, or a stream where most packets fail,
//! is [`AudioError::Corrupt`] rather than a silently shortened clip.

mod decode;
mod mp4;
mod resample;

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::{HOP, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES};

pub use decode::{decode, decode_bytes};
pub use resample::resample;

/// Lowest source sample rate accepted. Real files go down to 8 kHz (telephony) or 4 kHz at the
/// very least; a lower rate is a broken header, and resampling 1 Hz to 16 kHz would need FFT
/// blocks of millions of points.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest source sample rate accepted (the highest any common PCM format uses).
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// What [`AudioError`] names when the samples came from memory rather than a file.
pub const IN_MEMORY: &str = "<in-memory audio>";

/// Why a file could not be turned into 16 kHz mono audio. Every message is one line that starts
/// with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{}: file not found", shown(.path))]
    NotFound { path: PathBuf },
    #[error("{}: is a directory, not an audio file", shown(.path))]
    IsDirectory { path: PathBuf },
    #[error("{}: file is empty (0 bytes)", shown(.path))]
    EmptyFile { path: PathBuf },
    #[error("{}: cannot read the file: {}", shown(.path), one_line(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an audio file this tool can read (unknown or unsupported format)", shown(.path))]
    UnknownFormat { path: PathBuf },
    #[error("{}: the audio codec is not supported ({})", shown(.path), .detail)]
    UnsupportedCodec { path: PathBuf, detail: String },
    #[error("{}: file has no audio track", shown(.path))]
    NoAudioTrack { path: PathBuf },
    #[error("{}: file is truncated: it ends before any audio could be decoded", shown(.path))]
    Truncated { path: PathBuf },
    #[error("{}: corrupt audio stream: {}", shown(.path), .detail)]
    Corrupt { path: PathBuf, detail: String },
    #[error("{}: zero-length audio: no samples could be decoded", shown(.path))]
    ZeroLength { path: PathBuf },
    #[error("{}: audio contains NaN or infinite samples (first at sample {index})", shown(.path))]
    NonFinite { path: PathBuf, index: usize },
    #[error("{}: audio is silent: every sample is zero", shown(.path))]
    Silent { path: PathBuf },
    #[error(
        "{}: unsupported sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)",
        shown(.path)
    )]
    UnsupportedSampleRate { path: PathBuf, rate: u32 },
    #[error("{}: resampling failed: {}", shown(.path), .detail)]
    Resample { path: PathBuf, detail: String },
    /// Longer than [`crate::limits::MAX_CLIP_SECONDS`]: `seconds` is the length its header
    /// declares, or None for a stream refused once it passed the limit.
    #[error(
        "{}: the clip is {}: prunescope accepts clips of at most {}",
        shown(.path),
        match .seconds { Some(s) => format!("{} long", clock(*s)), None => format!("longer than {}", clock(*.max as f64)) },
        clock(*.max as f64)
    )]
    TooLong {
        path: PathBuf,
        seconds: Option<f64>,
        max: u64,
    },
    #[error(
        "{}: the file is {size} bytes, more than the remote protocol's {max} per frame",
        shown(.path)
    )]
    TooLargeToSend { path: PathBuf, size: u64, max: u64 },
}

/// `h:mm:ss` (seconds rounded down).
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl AudioError {
    /// The file the error is about ([`IN_MEMORY`] for samples that came from memory).
    pub fn path(&self) -> &Path {
        match self {
            AudioError::NotFound { path }
            | AudioError::IsDirectory { path }
            | AudioError::EmptyFile { path }
            | AudioError::Io { path, .. }
            | AudioError::UnknownFormat { path }
            | AudioError::UnsupportedCodec { path, .. }
            | AudioError::NoAudioTrack { path }
            | AudioError::Truncated { path }
            | AudioError::Corrupt { path, .. }
            | AudioError::ZeroLength { path }
            | AudioError::NonFinite { path, .. }
            | AudioError::Silent { path }
            | AudioError::UnsupportedSampleRate { path, .. }
            | AudioError::Resample { path, .. }
            | AudioError::TooLong { path, .. }
            | AudioError::TooLargeToSend { path, .. } => path,
        }
    }

    /// The same error about another file: lets in-memory steps (resampling, validation) report
    /// the file they were run for.
    fn for_file(mut self, file: &Path) -> Self {
        match &mut self {
            AudioError::NotFound { path }
            | AudioError::IsDirectory { path }
            | AudioError::EmptyFile { path }
            | AudioError::Io { path, .. }
            | AudioError::UnknownFormat { path }
            | AudioError::UnsupportedCodec { path, .. }
            | AudioError::NoAudioTrack { path }
            | AudioError::Truncated { path }
            | AudioError::Corrupt { path, .. }
            | AudioError::ZeroLength { path }
            | AudioError::NonFinite { path, .. }
            | AudioError::Silent { path }
            | AudioError::UnsupportedSampleRate { path, .. }
            | AudioError::Resample { path, .. }
            | AudioError::TooLong { path, .. }
            | AudioError::TooLargeToSend { path, .. } => *path = file.to_path_buf(),
        }
        self
    }
}

/// A path for a one-line message: control characters (a newline in a file name) are escaped.
fn shown(path: &Path) -> String {
    one_line(&path.display())
}

fn one_line(text: &dyn std::fmt::Display) -> String {
    let text = text.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn in_memory() -> PathBuf {
    PathBuf::from(IN_MEMORY)
}

/// A clip ready for the model: mono, [`SAMPLE_RATE`], finite, not empty, not digitally silent.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Mono samples at 16 kHz.
    pub samples: std::sync::Arc<Vec<f32>>,
    /// The sample rate of the source before resampling.
    pub source_rate: u32,
    /// The channel count of the source before the downmix.
    pub source_channels: usize,
    /// The file it came from (`None` for [`Audio::from_samples`]).
    pub path: Option<PathBuf>,
}

impl Audio {
    /// Duration in seconds at 16 kHz.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// Mono samples at `rate` from memory: resampled to 16 kHz if needed, then validated as
    /// [`load`] does.
    pub fn from_samples(samples: Vec<f32>, rate: u32) -> Result<Audio, AudioError> {
        check_rate(rate)?;
        validate(&samples)?;
        let samples = if rate == SAMPLE_RATE {
            samples
        } else {
            resample(&samples, rate, SAMPLE_RATE)?
        };
        validate(&samples)?;
        Ok(Audio {
            samples: samples.into(),
            source_rate: rate,
            source_channels: 1,
            path: None,
        })
    }

    /// Consecutive 30 s sample ranges covering the clip; the last one may be shorter. A clip of
    /// n > 0 samples has ceil(n / 480000) windows.
    pub fn windows(&self) -> Vec<Range<usize>> {
        self.windows_of(WINDOW_SAMPLES)
    }

    /// Consecutive ranges of `len` samples (the last may be shorter), for models whose window is
    /// not 30 s (toy test models).
    pub fn windows_of(&self, len: usize) -> Vec<Range<usize>> {
        let n = self.samples.len();
        let len = len.max(1);
        (0..n)
            .step_by(len)
            .map(|start| start..(start + len).min(n))
            .collect()
    }
}

/// Decode a file, take the mean of its channels, resample to 16 kHz and validate it.
pub fn load(path: &Path) -> Result<Audio, AudioError> {
    finish(decode(path)?, path)
}

/// The bundled demo clip (`assets/jfk.wav`, 11 s of speech; its provenance is in
/// `assets/NOTICE.md`), compiled into the binary so it is there wherever the binary runs.
pub const DEMO_CLIP: &[u8] = include_bytes!("../../assets/jfk.wav");

/// [`load`] of the bundled demo clip.
pub fn demo() -> Result<Audio, AudioError> {
    load_bytes(DEMO_CLIP.to_vec(), Path::new("jfk.wav"))
}

/// [`load`] of a file's bytes held in memory (a remote client's clip); `name` is the file's
/// path where it came from: the clip's `path`, the format hint and what errors name.
pub fn load_bytes(bytes: Vec<u8>, name: &Path) -> Result<Audio, AudioError> {
    finish(decode_bytes(bytes, name)?, name)
}

fn finish(
    (mono, rate, channels): (Vec<f32>, u32, usize),
    path: &Path,
) -> Result<Audio, AudioError> {
    check_rate(rate).map_err(|e| e.for_file(path))?;
    validate(&mono).map_err(|e| e.for_file(path))?;
    let samples = resample(&mono, rate, SAMPLE_RATE).map_err(|e| e.for_file(path))?;
    // A clip can only lose its last nonzero samples to the resampler if it is a handful of
    // samples long; keep the guarantee anyway.
    validate(&samples).map_err(|e| e.for_file(path))?;
    Ok(Audio {
        samples: samples.into(),
        source_rate: rate,
        source_channels: channels,
        path: Some(path.to_path_buf()),
    })
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::UnsupportedSampleRate {
            path: in_memory(),
            rate,
        })
    }
}

/// Not empty, every sample finite, at least one sample not exactly zero.
fn validate(samples: &[f32]) -> Result<(), AudioError> {
    if samples.is_empty() {
        return Err(AudioError::ZeroLength { path: in_memory() });
    }
    if let Some(index) = samples.iter().position(|s| !s.is_finite()) {
        return Err(AudioError::NonFinite {
            path: in_memory(),
            index,
        });
    }
    if samples.iter().all(|&s| s == 0.0) {
        return Err(AudioError::Silent { path: in_memory() });
    }
    Ok(())
}

/// Valid mel frames of a window with `n` samples: `ceil(n / 160)`, at most 3000.
pub fn valid_frames(n: usize) -> usize {
    n.div_ceil(HOP).min(WINDOW_FRAMES)
}

/// Valid Whisper encoder tokens of a window with `n` samples: `ceil(L / 2)`, at most 1500.
pub fn whisper_tokens(n: usize) -> usize {
    valid_frames(n).div_ceil(2).min(WINDOW_FRAMES / 2)
}

/// Valid tokens of a window with `n` samples after the stride-2 pooling of Qwen2-Audio / Audio
/// Flamingo 3: `((L - 1) / 2 + 1 - 2) / 2 + 1` with floor division as in the Qwen2-Audio
/// processor, which is `floor(ceil(L / 2) / 2)` (0 for L <= 2), at most 750.
pub fn pooled_tokens(n: usize) -> usize {
    (whisper_tokens(n) / 2).min(WINDOW_FRAMES / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts() {
        assert_eq!(valid_frames(0), 0);
        assert_eq!(valid_frames(1), 1);
        assert_eq!(valid_frames(160), 1);
        assert_eq!(valid_frames(161), 2);
        assert_eq!(valid_frames(480_000), 3000);
        assert_eq!(valid_frames(10_000_000), 3000);
        assert_eq!(whisper_tokens(0), 0);
        assert_eq!(whisper_tokens(1), 1);
        assert_eq!(whisper_tokens(176_000), 550);
        assert_eq!(whisper_tokens(64_000), 200);
        assert_eq!(whisper_tokens(480_000), 1500);
        assert_eq!(whisper_tokens(479_999), 1500);
        assert_eq!(pooled_tokens(0), 0);
        assert_eq!(pooled_tokens(480_000), 750);
        assert_eq!(pooled_tokens(176_000), 275);
    }

    /// The pooled count is the Qwen2-Audio processor's formula, evaluated with Python's floor
    /// division (which rounds negative quotients down).
    #[test]
    fn pooled_tokens_match_the_processor_formula() {
        fn floor_div(a: i64, b: i64) -> i64 {
            a.div_euclid(b)
        }
        for n in (0..=480_000usize)
            .step_by(37)
            .chain([1, 159, 160, 161, 320, 321, 480])
        {
            let l = n.div_ceil(160) as i64;
            let x = floor_div(l - 1, 2) + 1;
            let pooled = floor_div(x - 2, 2) + 1;
            assert_eq!(pooled_tokens(n) as i64, pooled.max(0), "n = {n}");
            assert_eq!(whisper_tokens(n) as i64, x, "n = {n}");
        }
    }

    #[test]
    fn windows_cover_the_clip() {
        let clip = |n: usize| Audio {
            samples: vec![0.1; n].into(),
            source_rate: SAMPLE_RATE,
            source_channels: 1,
            path: None,
        };
        assert_eq!(clip(1).windows(), vec![0..1]);
        assert_eq!(clip(480_000).windows(), vec![0..480_000]);
        assert_eq!(clip(480_001).windows(), vec![0..480_000, 480_000..480_001]);
        assert_eq!(clip(528_000).windows().len(), 2);
        assert_eq!(clip(1_440_000).windows().len(), 3);
        assert!(clip(0).windows().is_empty());
    }

    #[test]
    fn from_samples_validates() {
        let err = Audio::from_samples(vec![], 16_000).unwrap_err();
        assert!(matches!(err, AudioError::ZeroLength { .. }), "{err}");
        let err = Audio::from_samples(vec![0.0; 100], 16_000).unwrap_err();
        assert!(matches!(err, AudioError::Silent { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("audio is silent: every sample is zero"));
        let err = Audio::from_samples(vec![0.1, f32::NAN, 0.2], 16_000).unwrap_err();
        assert!(
            matches!(err, AudioError::NonFinite { index: 1, .. }),
            "{err}"
        );
        let err = Audio::from_samples(vec![0.1, f32::INFINITY], 16_000).unwrap_err();
        assert!(
            matches!(err, AudioError::NonFinite { index: 1, .. }),
            "{err}"
        );
        let err = Audio::from_samples(vec![0.1; 10], 0).unwrap_err();
        assert!(
            matches!(err, AudioError::UnsupportedSampleRate { rate: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with(IN_MEMORY));
        let audio = Audio::from_samples(vec![0.25; 16_000], 16_000).unwrap();
        assert_eq!(audio.samples.len(), 16_000);
        assert!((audio.duration_s() - 1.0).abs() < 1e-12);
        assert_eq!(audio.path, None);
        let audio = Audio::from_samples(vec![0.25; 48_000], 48_000).unwrap();
        assert_eq!(audio.samples.len(), 16_000);
        assert_eq!(audio.source_rate, 48_000);
    }

    #[test]
    fn messages_are_one_line_and_name_the_file() {
        let err = AudioError::NotFound {
            path: PathBuf::from("dir/odd\nname.wav"),
        };
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("dir/odd\\nname.wav: "), "{text}");
        let err = AudioError::Silent { path: in_memory() }.for_file(Path::new("a.wav"));
        assert_eq!(err.path(), Path::new("a.wav"));
        assert_eq!(
            err.to_string(),
            "a.wav: audio is silent: every sample is zero"
        );
    }
}
