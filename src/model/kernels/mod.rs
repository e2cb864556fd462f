//! Small dense CPU kernels of the Whisper encoder ([`crate::model::encoder_cpu`]) and decoder
//! ([`crate::model::whisper`]), over plain f32 slices:
//!
//! - [`products`]: few-row matrix products (`y = x W^T + b`) and their parallel frame;
//! - [`vector`]: attention's dot products and weighted sums of values;
//! - [`activations`]: layer norm, softmax, GELU and the `exp`/`erf` approximations under them;
//! - [`cpu`]: which vector instructions the CPU has, checked in one place.
//!
//! Each kernel dispatches at run time to an AVX2+FMA version where the CPU has one, else to
//! portable code in the same order of operations (a fused multiply-add rounds once, so the two
//! can differ in the last bits; on one machine a kernel's result never changes).

pub mod activations;
pub mod cpu;
pub mod products;
pub mod vector;

pub use activations::{exp_approx, gelu, layer_norm, softmax_row};
pub use products::{by_features, linear, Matrix, Weight};
pub use vector::{axpy, dot, dots, weighted_sum};

/// Deterministic values in [-1, 1] (xorshift) for the kernels' tests.
#[cfg(test)]
pub(crate) fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}
