//! Band-limited resampling with rubato's synchronous FFT resampler.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::{check_rate, in_memory, AudioError};

/// Smallest FFT block on the input side. Larger blocks give a sharper anti-aliasing filter (its
/// cutoff moves closer to the lower Nyquist frequency); 4096 puts 44.1 kHz -> 16 kHz at a
/// 4410 -> 1600 point block, cheap on any clip.
const MIN_BLOCK: usize = 4096;

/// Resample mono audio from `from` Hz to `to` Hz.
///
/// The output has `round(n * to / from)` samples and is time-aligned with the input: the
/// resampler's delay is trimmed and its tail flushed, so sample `i` of the output is the input at
/// time `i / to` seconds. Equal rates return a copy.
pub fn resample(mono: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    check_rate(from)?;
    check_rate(to)?;
    if from == to {
        return Ok(mono.to_vec());
    }
    if mono.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |detail: String| AudioError::Resample {
        path: in_memory(),
        detail,
    };
    let out_len = output_len(mono.len(), from, to);
    let mut resampler = Fft::<f32>::new(
        from as usize,
        to as usize,
        block_len(from, to),
        1,
        FixedSync::Both,
    )
    .map_err(|e| fail(e.to_string()))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| fail(e.to_string()))?;
    let output = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| fail(e.to_string()))?;
    let mut samples = output.take_data();
    // process_all returns ceil(n * to / from) frames (computed in f64); the contract is the
    // rounded length, and the frames past it are the flushed tail of the filter.
    samples.resize(out_len, 0.0);
    Ok(samples)
}

/// Input block length for rubato's FFT resampler: a whole number of `from / gcd` periods, at
/// least [`MIN_BLOCK`], and an even number of them. The resampler's filter is centred on sample
/// `block_in / 2` and it reports a delay of `block_out / 2` output samples; with both block
/// lengths even the two agree exactly, otherwise (96 kHz -> 16 kHz gives 683 output samples)
/// the output would be half a sample late.
fn block_len(from: u32, to: u32) -> usize {
    let g = gcd(from, to);
    let period = (from / g) as usize;
    let periods = MIN_BLOCK.div_ceil(period).max(1);
    (periods + periods % 2) * period
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `round(n * to / from)`, half up, in exact integer arithmetic.
fn output_len(n: usize, from: u32, to: u32) -> usize {
    let (n, from, to) = (n as u128, u128::from(from), u128::from(to));
    ((n * to + from / 2) / from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_even_on_both_sides() {
        for (from, to) in [
            (96_000, 16_000),
            (44_100, 16_000),
            (48_000, 16_000),
            (8_000, 16_000),
            (44_101, 16_000),
            (11_025, 16_000),
        ] {
            let block_in = block_len(from, to);
            let block_out = block_in * to as usize / from as usize;
            assert_eq!(block_out * from as usize, block_in * to as usize);
            assert!(
                block_in >= MIN_BLOCK && block_in.is_multiple_of(2) && block_out.is_multiple_of(2),
                "{from} -> {to}: {block_in} -> {block_out}"
            );
        }
        assert_eq!(gcd(44_100, 16_000), 100);
    }

    #[test]
    fn output_lengths() {
        assert_eq!(output_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(output_len(441_000, 44_100, 16_000), 160_000);
        assert_eq!(output_len(1, 44_100, 16_000), 0);
        assert_eq!(output_len(2, 44_100, 16_000), 1);
        assert_eq!(output_len(3, 8_000, 16_000), 6);
        for n in [1usize, 2, 3, 100, 1000, 4409, 4410, 4411, 100_001] {
            let out = resample(&vec![0.5; n], 44_100, 16_000).unwrap();
            assert_eq!(out.len(), output_len(n, 44_100, 16_000), "n = {n}");
            let out = resample(&vec![0.5; n], 8_000, 16_000).unwrap();
            assert_eq!(out.len(), 2 * n, "n = {n}");
        }
    }

    #[test]
    fn bad_rates_are_errors() {
        assert!(matches!(
            resample(&[0.1], 0, 16_000),
            Err(AudioError::UnsupportedSampleRate { rate: 0, .. })
        ));
        assert!(matches!(
            resample(&[0.1], 16_000, 0),
            Err(AudioError::UnsupportedSampleRate { rate: 0, .. })
        ));
        assert_eq!(
            resample(&[0.1, 0.2], 16_000, 16_000).unwrap(),
            vec![0.1, 0.2]
        );
    }

    /// A DC level survives resampling away from the edges (no gain error, no offset).
    #[test]
    fn dc_is_kept() {
        let out = resample(&vec![0.5; 48_000], 48_000, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        for &s in &out[200..15_800] {
            assert!((s - 0.5).abs() < 1e-3, "{s}");
        }
    }
}
