//! Log-mel features exactly as Hugging Face's `WhisperFeatureExtractor` (SPEC.md section 1).
//!
//! One 30 s window (480000 samples, zero-padded or cut) becomes `[n_mels][3000]` row-major:
//! periodic Hann window of 400, hop 160, STFT with `center=True` (reflect padding of 200 on each
//! side), 3001 frames of which the last is dropped, power spectrum of the 201 bins, Slaney-scale
//! Slaney-normalised mel filters over 0-8000 Hz, `log10(max(mel, 1e-10))`, `max(x, max(x) - 8)`
//! over the whole window, `(x + 4) / 4`.
//!
//! The filter bank is built from transformers' `mel_filter_bank` formulas at construction. The
//! spectrum is computed in f64: two real frames share one complex FFT of 400 (one as the real
//! part, one as the imaginary part) and are separated by the conjugate symmetry of real
//! transforms.

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::{HOP, SAMPLE_RATE, WINDOW_FRAMES};

/// FFT size and window length.
pub const N_FFT: usize = 400;
/// Frequency bins of the one-sided spectrum.
pub const N_BINS: usize = N_FFT / 2 + 1;
/// Reflect padding on each side (`center=True`).
const PAD: usize = N_FFT / 2;
/// Floor of the mel energies before the log.
const MEL_FLOOR: f64 = 1e-10;
/// Dynamic range kept below the window's maximum, in log10 units.
const DYNAMIC_RANGE: f32 = 8.0;

/// One triangular filter: its weights over the bins `start..start + weights.len()`, the only
/// bins where it is nonzero.
#[derive(Debug, Clone)]
struct MelFilter {
    start: usize,
    weights: Vec<f64>,
}

/// Whisper's log-mel front end, with its filter bank, window and FFT plan prepared once.
pub struct MelExtractor {
    n_mels: usize,
    window: Vec<f64>,
    filters: Vec<MelFilter>,
    fft: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl MelExtractor {
    /// An extractor with `n_mels` filters (80 for Whisper tiny to medium, 128 for large-v3).
    pub fn new(n_mels: usize) -> Self {
        let bank = mel_filter_bank(N_BINS, n_mels, 0.0, 8_000.0, SAMPLE_RATE);
        let filters = (0..n_mels)
            .map(|m| {
                let column = |k: usize| bank[k * n_mels + m];
                let first = (0..N_BINS).find(|&k| column(k) != 0.0);
                let last = (0..N_BINS).rev().find(|&k| column(k) != 0.0);
                match (first, last) {
                    (Some(first), Some(last)) => MelFilter {
                        start: first,
                        weights: (first..=last).map(column).collect(),
                    },
                    // A filter narrower than the bin spacing can miss every bin (it happens
                    // for many filters at small n_fft); its energy is the floor.
                    _ => MelFilter {
                        start: 0,
                        weights: Vec::new(),
                    },
                }
            })
            .collect();
        let window = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / N_FFT as f64).cos())
            .collect();
        let fft = FftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        MelExtractor {
            n_mels,
            window,
            filters,
            fft,
        }
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel of one window: `window` is zero-padded (or cut) to 480000 samples; the output is
    /// row-major `[n_mels][3000]`.
    pub fn compute(&self, window: &[f32]) -> Vec<f32> {
        self.compute_frames(window, WINDOW_FRAMES)
    }

    /// Log-mel of a window of `frames` frames (`frames * 160` samples, zero-padded or cut;
    /// `frames` is rounded up to even): row-major `[n_mels][frames]`. Models whose encoder takes
    /// other than 3000 frames (the toy test models) use it; the result for 3000 is
    /// [`MelExtractor::compute`]'s.
    pub fn compute_frames(&self, window: &[f32], frames: usize) -> Vec<f32> {
        let frames = frames + frames % 2;
        let mut out = vec![0.0f32; self.n_mels * frames];
        if self.n_mels == 0 {
            return out;
        }
        let signal = reflect_padded(window, frames * HOP);

        let mut buf = vec![Complex::new(0.0f64, 0.0); N_FFT];
        let mut scratch = vec![Complex::new(0.0f64, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [[0.0f64; N_BINS]; 2];
        let mut max = f32::NEG_INFINITY;

        for pair in (0..frames).step_by(2) {
            // `frames` is even: frames `pair` and `pair + 1` always exist.
            let a = &signal[pair * HOP..pair * HOP + N_FFT];
            let b = &signal[(pair + 1) * HOP..(pair + 1) * HOP + N_FFT];
            for (((z, &w), &x), &y) in buf.iter_mut().zip(&self.window).zip(a).zip(b) {
                *z = Complex::new(w * x, w * y);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            // With z = x + i y: X[k] = (Z[k] + conj(Z[N-k])) / 2, Y[k] = (Z[k] - conj(Z[N-k])) / 2i.
            for k in 0..N_BINS {
                let z = buf[k];
                let w = buf[(N_FFT - k) % N_FFT];
                let (xr, xi) = (z.re + w.re, z.im - w.im);
                let (yr, yi) = (z.re - w.re, z.im + w.im);
                power[0][k] = 0.25 * (xr * xr + xi * xi);
                power[1][k] = 0.25 * (yr * yr + yi * yi);
            }
            for (half, spectrum) in power.iter().enumerate() {
                let frame = pair + half;
                for (m, filter) in self.filters.iter().enumerate() {
                    let bins = &spectrum[filter.start..filter.start + filter.weights.len()];
                    let energy: f64 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                    let value = energy.max(MEL_FLOOR).log10() as f32;
                    max = max.max(value);
                    out[m * frames + frame] = value;
                }
            }
        }

        let floor = max - DYNAMIC_RANGE;
        for value in &mut out {
            *value = (value.max(floor) + 4.0) / 4.0;
        }
        out
    }
}

/// The window zero-padded or cut to `len` samples, with 200 reflected samples on each side
/// (numpy's `reflect`: the edge sample itself is not repeated).
fn reflect_padded(window: &[f32], len: usize) -> Vec<f64> {
    let mut signal = vec![0.0f64; len + 2 * PAD];
    let n = window.len().min(len);
    for (s, &x) in signal[PAD..PAD + n].iter_mut().zip(window) {
        *s = f64::from(x);
    }
    for j in 0..PAD {
        signal[j] = signal[2 * PAD - j];
        let last = PAD + len - 1;
        signal[last + 1 + j] = signal[last - 1 - j];
    }
    signal
}

/// Slaney's mel scale: linear below 1000 Hz (3 mels per 200 Hz), logarithmic above.
fn hertz_to_mel(freq: f64) -> f64 {
    const MIN_LOG_HERTZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if freq >= MIN_LOG_HERTZ {
        MIN_LOG_MEL + (freq / MIN_LOG_HERTZ).ln() * (27.0 / 6.4f64.ln())
    } else {
        3.0 * freq / 200.0
    }
}

fn mel_to_hertz(mel: f64) -> f64 {
    const MIN_LOG_HERTZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HERTZ * ((6.4f64.ln() / 27.0) * (mel - MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// numpy's `linspace(start, stop, num)` (endpoint included, last value exactly `stop`).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| start + i as f64 * step).collect();
            v[num - 1] = stop;
            v
        }
    }
}

/// transformers' `mel_filter_bank(num_frequency_bins, num_mel_filters, min_frequency,
/// max_frequency, sampling_rate, norm="slaney", mel_scale="slaney")`, row-major
/// `[num_frequency_bins][num_mel_filters]`.
fn mel_filter_bank(
    num_frequency_bins: usize,
    num_mel_filters: usize,
    min_frequency: f64,
    max_frequency: f64,
    sampling_rate: u32,
) -> Vec<f64> {
    let mel_freqs = linspace(
        hertz_to_mel(min_frequency),
        hertz_to_mel(max_frequency),
        num_mel_filters + 2,
    );
    let filter_freqs: Vec<f64> = mel_freqs.into_iter().map(mel_to_hertz).collect();
    let fft_freqs = linspace(0.0, f64::from(sampling_rate / 2), num_frequency_bins);
    let mut bank = vec![0.0f64; num_frequency_bins * num_mel_filters];
    for (k, &f) in fft_freqs.iter().enumerate() {
        for m in 0..num_mel_filters {
            let (lo, center, hi) = (filter_freqs[m], filter_freqs[m + 1], filter_freqs[m + 2]);
            // As transformers computes them: slopes = filter_freqs - fft_freq.
            let down = -(lo - f) / (center - lo);
            let up = (hi - f) / (hi - center);
            let weight = down.min(up).max(0.0);
            let enorm = 2.0 / (hi - lo);
            bank[k * num_mel_filters + m] = weight * enorm;
        }
    }
    bank
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WINDOW_SAMPLES;

    #[test]
    fn slaney_scale() {
        assert_eq!(hertz_to_mel(0.0), 0.0);
        assert!((hertz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hertz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hertz_to_mel(6400.0) - 42.0).abs() < 1e-12);
        for f in [0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hertz(hertz_to_mel(f)) - f).abs() < 1e-9, "{f}");
        }
    }

    #[test]
    fn filters_are_sparse_triangles_with_slaney_area() {
        let mel = MelExtractor::new(80);
        assert_eq!(mel.n_mels(), 80);
        let widths: usize = mel.filters.iter().map(|f| f.weights.len()).sum();
        // Adjacent triangles overlap by half: each bin is covered about twice.
        assert!(widths < 2 * N_BINS + 2 * 80, "{widths}");
        for filter in &mel.filters {
            assert!(!filter.weights.is_empty());
            assert!(filter.weights.iter().all(|&w| w > 0.0));
        }
        // Slaney normalisation: each filter's area in Hz is about 1 (exactly 1 for a continuous
        // triangle; the 40 Hz bin grid samples it).
        for filter in &mel.filters[10..] {
            let area: f64 = filter.weights.iter().sum::<f64>() * 40.0;
            assert!((area - 1.0).abs() < 0.2, "{area}");
        }
    }

    #[test]
    fn silence_is_the_floor() {
        let mel = MelExtractor::new(80);
        let out = mel.compute(&[]);
        assert_eq!(out.len(), 80 * WINDOW_FRAMES);
        // log10(1e-10) = -10, then (-10 + 4) / 4.
        assert!(out.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    }

    #[test]
    fn reflect_padding_matches_numpy() {
        let x: Vec<f32> = (1..=WINDOW_SAMPLES).map(|i| i as f32).collect();
        let s = reflect_padded(&x, WINDOW_SAMPLES);
        // np.pad([1, 2, 3, ...], 200, mode="reflect") starts 201, 200, ..., 2, 1, 2, ...
        assert_eq!(s[0], 201.0);
        assert_eq!(s[199], 2.0);
        assert_eq!(s[200], 1.0);
        let n = WINDOW_SAMPLES as f64;
        assert_eq!(s[PAD + WINDOW_SAMPLES - 1], n);
        assert_eq!(s[PAD + WINDOW_SAMPLES], n - 1.0);
        assert_eq!(s[s.len() - 1], n - 200.0);
    }

    /// The packed two-frames-per-FFT spectrum equals a direct DFT of each frame.
    #[test]
    fn packed_fft_matches_direct_dft() {
        let samples: Vec<f32> = (0..WINDOW_SAMPLES)
            .map(|i| ((i as f32 * 0.013).sin() + (i as f32 * 0.31).cos() * 0.3) * 0.1)
            .collect();
        let mel = MelExtractor::new(80);
        let out = mel.compute(&samples);
        let signal = reflect_padded(&samples, WINDOW_SAMPLES);
        let mut logs = vec![0.0f32; 80 * WINDOW_FRAMES];
        let mut max = f32::NEG_INFINITY;
        for frame in [0usize, 1, 2, 1501, 2998, 2999] {
            let x = &signal[frame * HOP..frame * HOP + N_FFT];
            let mut spectrum = [0.0f64; N_BINS];
            for (k, p) in spectrum.iter_mut().enumerate() {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, &v) in x.iter().enumerate() {
                    let angle = -2.0 * PI * (k * i) as f64 / N_FFT as f64;
                    re += v * mel.window[i] * angle.cos();
                    im += v * mel.window[i] * angle.sin();
                }
                *p = re * re + im * im;
            }
            for (m, filter) in mel.filters.iter().enumerate() {
                let e: f64 = (0..filter.weights.len())
                    .map(|j| spectrum[filter.start + j] * filter.weights[j])
                    .sum();
                let v = e.max(MEL_FLOOR).log10() as f32;
                logs[m * WINDOW_FRAMES + frame] = v;
                max = max.max(v);
            }
        }
        let full_max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = full_max * 4.0 - 4.0 - DYNAMIC_RANGE;
        for frame in [0usize, 1, 2, 1501, 2998, 2999] {
            for m in 0..80 {
                let direct = (logs[m * WINDOW_FRAMES + frame].max(floor) + 4.0) / 4.0;
                let got = out[m * WINDOW_FRAMES + frame];
                assert!(
                    (direct - got).abs() < 1e-5,
                    "frame {frame} mel {m}: {direct} vs {got}"
                );
            }
        }
        assert!(max.is_finite());
    }
}
