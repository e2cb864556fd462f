//! Decoding, downmix, resampling and the errors of bad files.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use prunescope::audio::{self, Audio, AudioError};

use crate::common::{float32, pcm16, wav_bytes, TempDir};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

fn pcm24(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| {
            let v = (f64::from(s.clamp(-1.0, 1.0)) * 8_388_607.0).round() as i32;
            let b = v.to_le_bytes();
            [b[0], b[1], b[2]]
        })
        .collect()
}

fn tone(n: usize, rate: f64, freq: f64, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate).sin()) as f32)
        .collect()
}

/// The error's message is one line that names the file.
fn assert_readable(err: &AudioError, path: &Path) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert_eq!(err.path(), path);
}

/// Normalised cross-correlation of `a` and `b` with `b` shifted by `lag` (b[i + lag] against a[i]),
/// over the overlap.
fn ncc(a: &[f32], b: &[f32], lag: isize) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in a.iter().enumerate() {
        let j = i as isize + lag;
        if j < 0 || j as usize >= b.len() {
            continue;
        }
        let y = b[j as usize];
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa * bb).sqrt().max(1e-30)
}

/// (best lag, correlation at it) over lags in `-max_lag..=max_lag`.
fn best_lag(a: &[f32], b: &[f32], max_lag: isize) -> (isize, f64) {
    (-max_lag..=max_lag).map(|lag| (lag, ncc(a, b, lag))).fold(
        (0, f64::NEG_INFINITY),
        |best, cur| if cur.1 > best.1 { cur } else { best },
    )
}

// ---------------------------------------------------------------------------------------------
// Formats

#[test]
fn wav_16k_mono() {
    let audio = audio::load(&asset("jfk.wav")).unwrap();
    assert_eq!(audio.samples.len(), 176_000);
    assert_eq!((audio.source_rate, audio.source_channels), (16_000, 1));
    assert!((audio.duration_s() - 11.0).abs() < 1e-9);
    assert_eq!(audio.path.as_deref(), Some(asset("jfk.wav").as_path()));
    assert_eq!(audio.windows(), vec![0..176_000]);
    assert_eq!(audio::whisper_tokens(audio.samples.len()), 550);

    let (mono, rate, channels) = audio::decode(&data("arctic_a0007.wav")).unwrap();
    assert_eq!((mono.len(), rate, channels), (64_000, 16_000, 1));
}

#[test]
fn long_wav_has_two_windows() {
    let audio = audio::load(&data("jfk_x3.wav")).unwrap();
    assert_eq!(audio.samples.len(), 528_000);
    assert_eq!(audio.windows(), vec![0..480_000, 480_000..528_000]);
    let jfk = audio::load(&asset("jfk.wav")).unwrap();
    assert_eq!(&audio.samples[176_000..352_000], &jfk.samples[..]);
}

#[test]
fn flac_stereo_44k_is_downmixed_and_resampled() {
    let (mono, rate, channels) = audio::decode(&data("guit_em9.flac")).unwrap();
    assert_eq!((rate, channels), (44_100, 2));
    assert!(
        (mono.len() as f64 / 44_100.0 - 10.0).abs() < 0.05,
        "{}",
        mono.len()
    );
    let audio = audio::load(&data("guit_em9.flac")).unwrap();
    assert_eq!((audio.source_rate, audio.source_channels), (44_100, 2));
    let expected = (mono.len() as f64 * 16_000.0 / 44_100.0).round() as usize;
    assert_eq!(audio.samples.len(), expected);
    // The resampled clip is the decoded one at another rate: same loudness.
    let rms =
        |x: &[f32]| (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let (a, b) = (rms(&mono), rms(&audio.samples));
    assert!(a > 1e-3 && (a - b).abs() / a < 0.02, "{a} vs {b}");

    let audio = audio::load(&data("loop_safari.flac")).unwrap();
    assert_eq!((audio.source_rate, audio.source_channels), (44_100, 2));
    assert!(
        (audio.duration_s() - 8.0).abs() < 0.05,
        "{}",
        audio.duration_s()
    );
}

#[test]
fn mp3_matches_the_wav() {
    let wav = audio::load(&asset("jfk.wav")).unwrap();
    let mp3 = audio::load(&data("jfk.mp3")).unwrap();
    assert_eq!(mp3.source_rate, 16_000);
    // The decoder trims the encoder delay and padding (gapless): same length, no shift.
    assert!(
        (mp3.duration_s() - 11.0).abs() < 0.01,
        "mp3 lasts {} s",
        mp3.duration_s()
    );
    let (lag, corr) = best_lag(&wav.samples, &mp3.samples, 1_600);
    assert!(corr > 0.999 && lag == 0, "correlation {corr} at lag {lag}");
}

/// The first 2.5 s of arctic_a0007.wav encoded by ffmpeg: vorbis at 16 kHz mono, AAC at
/// 22.05 kHz stereo. The AAC priming samples are dropped by the MP4 edit list: no shift.
#[test]
fn ogg_vorbis_and_m4a_aac_match_the_wav() {
    let wav = audio::load(&data("arctic_a0007.wav")).unwrap();
    let reference = &wav.samples[..40_000];

    let ogg = audio::load(&data("arctic_a0007_2s5.ogg")).unwrap();
    assert_eq!((ogg.source_rate, ogg.source_channels), (16_000, 1));
    assert!(
        (ogg.duration_s() - 2.5).abs() < 0.001,
        "ogg lasts {} s",
        ogg.duration_s()
    );
    let (lag, corr) = best_lag(reference, &ogg.samples, 800);
    assert!(
        corr > 0.98 && lag == 0,
        "ogg: correlation {corr} at lag {lag}"
    );

    let m4a = audio::load(&data("arctic_a0007_2s5.m4a")).unwrap();
    assert_eq!((m4a.source_rate, m4a.source_channels), (22_050, 2));
    assert!(
        (m4a.duration_s() - 2.5).abs() < 0.001,
        "m4a lasts {} s",
        m4a.duration_s()
    );
    let (lag, corr) = best_lag(reference, &m4a.samples, 800);
    assert!(
        corr > 0.98 && lag == 0,
        "m4a: correlation {corr} at lag {lag}"
    );
}

/// The format comes from the content: an MP3 named .wav decodes.
#[test]
fn mp3_renamed_wav_decodes() {
    let dir = TempDir::new();
    let bytes = std::fs::read(data("jfk.mp3")).unwrap();
    let path = dir.file("really_an_mp3.wav", &bytes);
    let audio = audio::load(&path).unwrap();
    assert!((audio.duration_s() - 11.0).abs() < 0.01);
}

#[test]
fn float_and_24_bit_wavs_decode() {
    let dir = TempDir::new();
    let x = tone(8_000, 8_000.0, 440.0, 0.5);
    let path = dir.file("float.wav", &wav_bytes(3, 1, 8_000, 32, &float32(&x), None));
    let (mono, rate, _) = audio::decode(&path).unwrap();
    assert_eq!(rate, 8_000);
    assert_eq!(mono, x);
    let audio = audio::load(&path).unwrap();
    assert_eq!(audio.samples.len(), 16_000);

    // 24-bit stereo: the mono signal is the mean of the channels.
    let left = tone(4_800, 48_000.0, 440.0, 0.5);
    let stereo: Vec<f32> = left.iter().flat_map(|&s| [s, 0.5 * s]).collect();
    let path = dir.file(
        "pcm24.wav",
        &wav_bytes(1, 2, 48_000, 24, &pcm24(&stereo), None),
    );
    let (mono, rate, channels) = audio::decode(&path).unwrap();
    assert_eq!((mono.len(), rate, channels), (4_800, 48_000, 2));
    for (m, l) in mono.iter().zip(&left) {
        assert!((m - 0.75 * l).abs() < 1e-6, "{m} vs {}", 0.75 * l);
    }

    // Stereo with opposite channels is digital silence once downmixed.
    let stereo: Vec<f32> = x.iter().flat_map(|&s| [s, -s]).collect();
    let path = dir.file(
        "cancel.wav",
        &wav_bytes(3, 2, 8_000, 32, &float32(&stereo), None),
    );
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::Silent { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Resampling

/// A 1 kHz sine at 44.1 kHz keeps its amplitude and phase at 16 kHz, with little else.
#[test]
fn resampled_sine_keeps_amplitude_and_phase() {
    let n = 44_100 * 2;
    let x = tone(n, 44_100.0, 1_000.0, 0.5);
    let y = audio::resample(&x, 44_100, 16_000).unwrap();
    assert_eq!(y.len(), 32_000);
    // Least-squares fit of a sin + b cos at 1 kHz, away from the edges.
    let range = 1_000..31_000;
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for i in range.clone() {
        let w = 2.0 * PI * 1_000.0 * i as f64 / 16_000.0;
        a += f64::from(y[i]) * w.sin();
        b += f64::from(y[i]) * w.cos();
    }
    let m = range.len() as f64;
    let (a, b) = (2.0 * a / m, 2.0 * b / m);
    let amplitude = a.hypot(b);
    assert!((amplitude - 0.5).abs() < 0.005, "amplitude {amplitude}");
    // Phase error of a time shift d is 2 pi 1000 d: 0.01 rad is 1.6 us, a fraction of a sample.
    let phase = b.atan2(a);
    assert!(phase.abs() < 0.01, "phase {phase} rad");
    let mut residual = 0.0;
    let mut energy = 0.0;
    for i in range {
        let w = 2.0 * PI * 1_000.0 * i as f64 / 16_000.0;
        let fit = a * w.sin() + b * w.cos();
        residual += (f64::from(y[i]) - fit).powi(2);
        energy += fit.powi(2);
    }
    assert!(residual / energy < 1e-5, "residual {}", residual / energy);
}

/// A mix of tones below 7 kHz comes out as the same mix sampled at 16 kHz, not shifted.
#[test]
fn resampled_multitone_is_aligned() {
    let tones = [
        (313.0, 0.2),
        (1_234.5, 0.15),
        (2_718.0, 0.1),
        (4_321.0, 0.1),
        (6_543.0, 0.05),
    ];
    for from in [44_100u32, 48_000, 22_050, 96_000, 11_025, 8_000] {
        // Only the tones both rates can carry (well below both Nyquist frequencies).
        let limit = 0.45 * f64::from(from.min(16_000));
        let kept: Vec<(f64, f64)> = tones.iter().copied().filter(|&(f, _)| f < limit).collect();
        let mix = |rate: f64, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate;
                    kept.iter()
                        .map(|&(f, a)| a * (2.0 * PI * f * t + f / 1000.0).sin())
                        .sum::<f64>() as f32
                })
                .collect()
        };
        let x = mix(f64::from(from), from as usize);
        let y = audio::resample(&x, from, 16_000).unwrap();
        assert_eq!(y.len(), 16_000, "from {from}");
        let ideal = mix(16_000.0, 16_000);
        let inner = 500..15_500;
        let (lag, corr) = best_lag(&ideal[inner.clone()], &y[inner.clone()], 20);
        assert_eq!(lag, 0, "from {from}: peak at lag {lag} ({corr})");
        assert!(corr > 0.9999, "from {from}: correlation {corr}");
        let error = y[inner.clone()]
            .iter()
            .zip(&ideal[inner])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(error < 0.01, "from {from}: max error {error}");
    }
}

/// Content above 8 kHz is filtered out rather than aliased (linear interpolation would fold a
/// 10 kHz tone to 6 kHz at full strength).
#[test]
fn resampling_does_not_alias() {
    let x = tone(44_100, 44_100.0, 10_000.0, 0.5);
    let y = audio::resample(&x, 44_100, 16_000).unwrap();
    let inner = &y[1_000..15_000];
    let peak = inner.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
    assert!(peak < 0.005, "10 kHz leaks through at {peak}");
}

/// Short clips keep their exact length and are not lost in the resampler's delay.
#[test]
fn short_clips_survive_resampling() {
    let x = vec![0.3f32; 441];
    let y = audio::resample(&x, 44_100, 16_000).unwrap();
    assert_eq!(y.len(), 160);
    assert!(
        y[60..100].iter().all(|&s| (s - 0.3).abs() < 0.05),
        "{:?}",
        &y[60..100]
    );
    let audio = Audio::from_samples(vec![0.1; 3], 44_100).unwrap();
    assert_eq!(audio.samples.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn missing_file() {
    let dir = TempDir::new();
    let path = dir.0.join("nope.wav");
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::NotFound { .. }), "{err}");
    assert_readable(&err, &path);
}

#[test]
fn directory() {
    let dir = TempDir::new();
    let path = dir.0.clone();
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::IsDirectory { .. }), "{err}");
    assert_readable(&err, &path);
}

#[test]
fn empty_file() {
    let dir = TempDir::new();
    let path = dir.file("empty.wav", &[]);
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::EmptyFile { .. }), "{err}");
    assert_readable(&err, &path);
    assert!(err.to_string().contains("0 bytes"));
}

#[test]
fn text_named_wav() {
    let dir = TempDir::new();
    let text = "This is not audio.\nJust some text in a file with the wrong name.\n".repeat(20);
    let path = dir.file("notes.wav", text.as_bytes());
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::UnknownFormat { .. }), "{err}");
    assert_readable(&err, &path);
    assert!(err
        .to_string()
        .contains("not an audio file this tool can read"));
}

/// A header that promises 2 s of audio and holds none.
#[test]
fn wav_header_only() {
    let dir = TempDir::new();
    let path = dir.file(
        "header_only.wav",
        &wav_bytes(1, 1, 16_000, 16, &[], Some(64_000)),
    );
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::Truncated { .. }), "{err}");
    assert_readable(&err, &path);
}

/// A header that promises 2 s and holds 1 s: the second that is there is decoded.
#[test]
fn truncated_wav_keeps_what_is_there() {
    let dir = TempDir::new();
    let x = tone(32_000, 16_000.0, 300.0, 0.4);
    let full = pcm16(&x);
    let path = dir.file(
        "half.wav",
        &wav_bytes(1, 1, 16_000, 16, &full[..32_000], Some(64_000)),
    );
    let audio = audio::load(&path).unwrap();
    assert_eq!(audio.samples.len(), 16_000);
    for (a, b) in audio.samples.iter().zip(&x) {
        assert!((a - b).abs() < 1e-4);
    }

    // The same cut in the middle of a sample: the partial sample is dropped.
    let path = dir.file(
        "odd.wav",
        &wav_bytes(1, 1, 16_000, 16, &full[..32_001], Some(64_000)),
    );
    let audio = audio::load(&path).unwrap();
    assert_eq!(audio.samples.len(), 16_000);
}

/// A cut inside the header itself.
#[test]
fn truncated_header() {
    let dir = TempDir::new();
    let whole = wav_bytes(
        1,
        1,
        16_000,
        16,
        &pcm16(&tone(1_600, 16_000.0, 300.0, 0.4)),
        None,
    );
    for cut in [4, 12, 20, 30, 40] {
        let path = dir.file("cut_header.wav", &whole[..cut]);
        let err = audio::load(&path).unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::Truncated { .. } | AudioError::UnknownFormat { .. }
            ),
            "cut at {cut}: {err}"
        );
        assert_readable(&err, &path);
    }
}

#[test]
fn zero_length_wav() {
    let dir = TempDir::new();
    let path = dir.file("zero.wav", &wav_bytes(1, 1, 16_000, 16, &[], None));
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::ZeroLength { .. }), "{err}");
    assert_readable(&err, &path);
}

#[test]
fn silent_wav() {
    let dir = TempDir::new();
    let path = dir.file(
        "silence.wav",
        &wav_bytes(1, 2, 44_100, 16, &vec![0u8; 44_100 * 4], None),
    );
    let err = audio::load(&path).unwrap_err();
    assert!(matches!(err, AudioError::Silent { .. }), "{err}");
    assert_readable(&err, &path);
    assert!(err
        .to_string()
        .ends_with("audio is silent: every sample is zero"));
}

#[test]
fn nan_and_inf_samples() {
    let dir = TempDir::new();
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::NEG_INFINITY)] {
        let mut x = tone(16_000, 16_000.0, 300.0, 0.4);
        x[1_234] = bad;
        let path = dir.file(name, &wav_bytes(3, 1, 16_000, 32, &float32(&x), None));
        let err = audio::load(&path).unwrap_err();
        assert!(
            matches!(err, AudioError::NonFinite { index: 1_234, .. }),
            "{err}"
        );
        assert_readable(&err, &path);
    }
}

#[test]
fn sample_rate_zero() {
    let dir = TempDir::new();
    let path = dir.file(
        "rate0.wav",
        &wav_bytes(1, 1, 0, 16, &pcm16(&[0.1; 100]), None),
    );
    let err = audio::load(&path).unwrap_err();
    assert_readable(&err, &path);
    let path = dir.file(
        "rate100.wav",
        &wav_bytes(1, 1, 100, 16, &pcm16(&[0.1; 100]), None),
    );
    let err = audio::load(&path).unwrap_err();
    assert!(
        matches!(err, AudioError::UnsupportedSampleRate { rate: 100, .. }),
        "{err}"
    );
    assert_readable(&err, &path);
}

/// Random bytes, damaged headers and cut files never panic, and every error reads as one line
/// naming the file.
#[test]
fn fuzz_never_panics() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = TempDir::new();
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..60 {
        let len = (next() % 4_000 + 1) as usize;
        inputs.push((0..len).map(|_| next() as u8).collect());
    }
    let small_wav = wav_bytes(
        1,
        2,
        22_050,
        16,
        &pcm16(&tone(4_000, 22_050.0, 440.0, 0.3)),
        None,
    );
    let originals: Vec<Vec<u8>> = [
        small_wav,
        std::fs::read(data("jfk.mp3")).unwrap()[..8_000].to_vec(),
        std::fs::read(data("guit_em9.flac")).unwrap()[..20_000].to_vec(),
        std::fs::read(data("arctic_a0007_2s5.ogg")).unwrap(),
        std::fs::read(data("arctic_a0007_2s5.m4a")).unwrap(),
    ]
    .into();
    for original in &originals {
        for _ in 0..12 {
            // Damage a few bytes of the first 200 (the headers live there).
            let mut bytes = original.clone();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() as usize) % bytes.len().min(200);
                bytes[at] = next() as u8;
            }
            inputs.push(bytes);
            // Cut anywhere.
            let cut = (next() as usize) % original.len();
            inputs.push(original[..cut.max(1)].to_vec());
        }
    }
    for (i, bytes) in inputs.iter().enumerate() {
        let path = dir.file(&format!("fuzz{i}.wav"), bytes);
        match audio::load(&path) {
            Ok(audio) => {
                assert!(!audio.samples.is_empty());
                assert!(audio.samples.iter().all(|s| s.is_finite()));
            }
            Err(err) => assert_readable(&err, &path),
        }
    }
}
