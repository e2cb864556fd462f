//! Cosine similarity on L2-normalised keys, shared by visionzip and merge.
//!
//! Both methods assign many "joining" tokens to the most similar of a few "target" tokens. The
//! targets are normalised once into one contiguous matrix; each joining row is normalised into
//! a reused scratch row; the inner loop is a plain dot product over contiguous memory with no
//! allocation (SPEC clips reach 20,000 tokens of dimension 64, so this is O(M C d) hot code).

use super::Keys;

/// Below this norm a key row counts as the zero vector (the `eps` of `torch.nn.functional.
/// normalize`, which the reference used, is 1e-12).
const MIN_NORM: f64 = 1e-12;

/// Writes the L2-normalised `row` into `out`. A row whose norm is below [`MIN_NORM`] or not
/// finite (NaN or infinite values) becomes the zero vector: similarity 0 to every target, so it
/// joins the first target instead of poisoning the comparison with NaN.
fn normalise_into(row: &[f32], out: &mut [f32]) {
    // f64 so that the squared norm neither overflows nor loses the small components.
    let norm = row
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm.is_finite() && norm >= MIN_NORM {
        let inv = 1.0 / norm;
        for (o, &x) in out.iter_mut().zip(row) {
            *o = (f64::from(x) * inv) as f32;
        }
    } else {
        out.fill(0.0);
    }
}

/// Dot product with eight independent accumulators: keeps the loop free of a serial
/// dependency chain so the compiler can vectorise it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// A set of targets, normalised once, that tokens can be assigned to.
pub(crate) struct Targets<'a> {
    keys: Keys<'a>,
    /// `targets.len() x dim`, row-major, normalised.
    matrix: Vec<f32>,
    /// Scratch row for the token being assigned.
    query: Vec<f32>,
}

impl<'a> Targets<'a> {
    /// Normalises the key rows of `targets` (token indices, each `< n`; `keys` already checked
    /// to hold `n x dim` values).
    pub(crate) fn new(keys: Keys<'a>, targets: &[usize]) -> Self {
        let dim = keys.dim;
        let mut matrix = vec![0.0; targets.len() * dim];
        for (&t, out) in targets.iter().zip(matrix.chunks_exact_mut(dim)) {
            normalise_into(row(&keys, t), out);
        }
        Targets {
            keys,
            matrix,
            query: vec![0.0; dim],
        }
    }

    /// The position (in the `targets` slice given to [`Targets::new`]) of the target most
    /// similar to token `token`; the lowest position wins ties, and NaN similarities never win
    /// (they cannot occur after normalisation, but the comparison is written to be safe).
    /// Returns 0 when there are no targets; callers never ask then.
    pub(crate) fn nearest(&mut self, token: usize) -> usize {
        normalise_into(row(&self.keys, token), &mut self.query);
        let mut best = 0;
        let mut best_sim = f32::NEG_INFINITY;
        for (pos, target) in self.matrix.chunks_exact(self.keys.dim).enumerate() {
            let sim = dot(&self.query, target);
            // Strict `>`: keeps the lowest position on ties and skips NaN.
            if sim > best_sim {
                best_sim = sim;
                best = pos;
            }
        }
        best
    }
}

fn row<'a>(keys: &Keys<'a>, token: usize) -> &'a [f32] {
    let start = token * keys.dim;
    keys.data.get(start..start + keys.dim).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_scales_to_unit_length_and_zeroes_bad_rows() {
        let mut out = [0.0; 2];
        normalise_into(&[3.0, 4.0], &mut out);
        assert_eq!(out, [0.6, 0.8]);
        for bad in [
            [0.0, 0.0],
            [f32::NAN, 1.0],
            [f32::INFINITY, 1.0],
            [1e-20, 0.0],
        ] {
            out = [9.0; 2];
            normalise_into(&bad, &mut out);
            assert_eq!(out, [0.0, 0.0], "{bad:?}");
        }
        // Huge but finite rows do not overflow the norm.
        normalise_into(&[f32::MAX, f32::MAX], &mut out);
        assert!((out[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn dot_matches_naive_sum() {
        for len in [0, 1, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn nearest_uses_cosine_not_distance() {
        // Token 0 = (10, 0); target A = (1, 0.5) is farther in distance (9.0 vs 7.6) than
        // target B = (7, 7) but closer in angle (cos 0.89 vs 0.71).
        let data = [10.0, 0.0, 1.0, 0.5, 7.0, 7.0, -1.0, 0.0];
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        let mut targets = Targets::new(keys, &[1, 2]);
        assert_eq!(targets.nearest(0), 0);
        // All similarities negative: the least negative wins (-0.89 for A, -0.71 for B).
        assert_eq!(targets.nearest(3), 1);
        let mut targets = Targets::new(keys, &[2, 1]);
        assert_eq!(targets.nearest(0), 1);
        assert_eq!(targets.nearest(3), 0);
    }

    #[test]
    fn nearest_breaks_ties_by_lowest_position() {
        // (1, 1) is exactly as similar to (1, 0) as to (0, 1); a zero and a NaN row are
        // similarity 0 to everything.
        let data = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, f32::NAN, 2.0];
        let keys = Keys {
            data: &data,
            dim: 2,
        };
        for order in [[0, 1], [1, 0]] {
            let mut targets = Targets::new(keys, &order);
            for token in [2, 3, 4] {
                assert_eq!(
                    targets.nearest(token),
                    0,
                    "token {token}, targets {order:?}"
                );
            }
        }
    }
}
