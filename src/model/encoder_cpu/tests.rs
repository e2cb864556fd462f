//! The CPU encoder against its definition, written out in f64.

use super::*;
use candle_core::Device;

const D: usize = 8;
const HEADS: usize = 2;
const FFN: usize = 16;
const MELS: usize = 3;
const CTX: usize = 5;
const LAYERS: usize = 2;

struct Rng(u64);

impl Rng {
    fn take(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }
}

/// Random weights of a two-layer toy encoder, by name.
fn weights() -> std::collections::HashMap<&'static str, (Vec<f32>, Vec<usize>)> {
    let mut r = Rng(7);
    let mut w = std::collections::HashMap::new();
    let mut put = |name: &'static str, shape: Vec<usize>, scale: f32| {
        let n = shape.iter().product();
        w.insert(name, (r.take(n, scale), shape));
    };
    put("conv1", vec![D, MELS, 3], 0.5);
    put("conv1_b", vec![D], 0.1);
    put("conv2", vec![D, D, 3], 0.3);
    put("conv2_b", vec![D], 0.1);
    put("pos", vec![CTX, D], 0.5);
    put("ln_g", vec![D], 1.0);
    put("ln_b", vec![D], 0.1);
    for (n, s) in [("q", D), ("k", D), ("v", D), ("o", D), ("fc1", FFN)] {
        put(n, vec![s, D], 0.6);
    }
    put("fc2", vec![D, FFN], 0.4);
    for n in ["q_b", "v_b", "o_b", "fc2_b"] {
        put(n, vec![D], 0.1);
    }
    put("fc1_b", vec![FFN], 0.1);
    w
}

fn tensor(w: &(Vec<f32>, Vec<usize>)) -> Tensor {
    Tensor::from_vec(w.0.clone(), w.1.as_slice(), &Device::Cpu).unwrap()
}

fn encoder() -> CpuEncoder {
    let w = weights();
    let t = |n: &str| tensor(&w[n]);
    let linear = |n: &str, b: Option<&str>| Linear {
        weight: t(n),
        bias: b.map(t),
    };
    let ln = || LayerNorm {
        weight: t("ln_g"),
        bias: t("ln_b"),
    };
    // Every layer shares the same weights: enough to check the arithmetic.
    let layer = || EncoderLayer {
        attn_ln: ln(),
        q: linear("q", Some("q_b")),
        k: linear("k", None),
        v: linear("v", Some("v_b")),
        out: linear("o", Some("o_b")),
        mlp_ln: ln(),
        fc1: linear("fc1", Some("fc1_b")),
        fc2: linear("fc2", Some("fc2_b")),
    };
    CpuEncoder::new(
        Parts {
            conv1: (&t("conv1"), &t("conv1_b")),
            conv2: (&t("conv2"), &t("conv2_b")),
            positions: &t("pos"),
            layers: Box::new((0..LAYERS).map(|_| Ok(layer()))),
            ln_post: &ln(),
        },
        Dims {
            d: D,
            ffn: FFN,
            heads: HEADS,
            n_mels: MELS,
            n_ctx: CTX,
        },
    )
    .unwrap()
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// `x W^T + b` in f64, `W` row-major `out x inp`.
fn lin(x: &[f64], w: &[f32], b: Option<&[f32]>, inp: usize) -> Vec<f64> {
    let out = w.len() / inp;
    x.chunks(inp)
        .flat_map(|row| {
            (0..out).map(move |o| {
                let s: f64 = (0..inp).map(|i| row[i] * w[o * inp + i] as f64).sum();
                s + b.map_or(0.0, |b| b[o] as f64)
            })
        })
        .collect()
}

fn layer_norm(x: &[f64], g: &[f32], b: &[f32]) -> Vec<f64> {
    x.chunks(D)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / D as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / D as f64;
            (0..D).map(move |c| (row[c] - mean) / (var + 1e-5).sqrt() * g[c] as f64 + b[c] as f64)
        })
        .collect()
}

/// The encoder written out in f64 from its definition: (x before the final norm, per layer
/// the per-head column sums over the first `rows` rows, the last layer's keys).
#[allow(clippy::type_complexity)]
fn reference(mel: &[f32], keys: usize, rows: usize) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let w = weights();
    let g = |n: &str| w[n].0.as_slice();
    let frames = 2 * CTX;
    let at = |c: &[f64], f: isize, i: usize, width: usize| -> f64 {
        if f < 0 || f as usize >= c.len() / width {
            0.0
        } else {
            c[f as usize * width + i]
        }
    };
    let mel_t: Vec<f64> = (0..frames)
        .flat_map(|f| (0..MELS).map(move |b| mel[b * frames + f] as f64))
        .collect();
    let conv = |input: &[f64], width: usize, w: &[f32], b: &[f32], n: usize, stride: usize| {
        (0..n)
            .flat_map(|t| {
                (0..D).map(move |o| {
                    let mut s = b[o] as f64;
                    for i in 0..width {
                        for k in 0..3 {
                            let f = (stride * t + k) as isize - 1;
                            s += w[(o * width + i) * 3 + k] as f64 * at(input, f, i, width);
                        }
                    }
                    gelu(s)
                })
            })
            .collect::<Vec<f64>>()
    };
    let c1 = conv(&mel_t, MELS, g("conv1"), g("conv1_b"), frames, 1);
    let mut x = conv(&c1, D, g("conv2"), g("conv2_b"), CTX, 2);
    for (v, p) in x.iter_mut().zip(g("pos")) {
        *v += *p as f64;
    }
    let (mut sums, mut last_k) = (Vec::new(), Vec::new());
    for _ in 0..LAYERS {
        let (s, k) = reference_layer(&mut x, keys, rows);
        sums.push(s);
        last_k = k;
    }
    (x, sums, last_k)
}

/// One layer of the definition over the rows of `x` (`n x D`, any `n`), each attending to the
/// first `keys`; returns the per-head sums over the first `rows` query rows and the keys.
fn reference_layer(x: &mut [f64], keys: usize, rows: usize) -> (Vec<f64>, Vec<f64>) {
    let w = weights();
    let g = |n: &str| w[n].0.as_slice();
    let n = x.len() / D;
    let hd = D / HEADS;
    let scale = 1.0 / (hd as f64).sqrt();
    let h = layer_norm(x, g("ln_g"), g("ln_b"));
    let q: Vec<f64> = lin(&h, g("q"), Some(g("q_b")), D)
        .iter()
        .map(|v| v * scale)
        .collect();
    let k = lin(&h, g("k"), None, D);
    let v = lin(&h, g("v"), Some(g("v_b")), D);
    let mut a = vec![0f64; n * D];
    let mut s = vec![0f64; HEADS * n];
    for head in 0..HEADS {
        for r in 0..n {
            let logit = |j: usize| -> f64 {
                (0..hd)
                    .map(|c| q[r * D + head * hd + c] * k[j * D + head * hd + c])
                    .sum()
            };
            let m = (0..keys).map(logit).fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = (0..keys).map(|j| (logit(j) - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for j in 0..keys {
                let p = e[j] / z;
                if r < rows {
                    s[head * n + j] += p;
                }
                for c in 0..hd {
                    a[r * D + head * hd + c] += p * v[j * D + head * hd + c];
                }
            }
        }
    }
    let o = lin(&a, g("o"), Some(g("o_b")), D);
    x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
    let h = layer_norm(x, g("ln_g"), g("ln_b"));
    let f: Vec<f64> = lin(&h, g("fc1"), Some(g("fc1_b")), D)
        .into_iter()
        .map(gelu)
        .collect();
    let y = lin(&f, g("fc2"), Some(g("fc2_b")), FFN);
    x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);
    (s, k)
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn matches_the_definition_with_and_without_a_key_mask() {
    let e = encoder();
    let mel = Rng(3).take(MELS * 2 * CTX, 1.0);
    for (keys, rows) in [(CTX, 3), (3, 3), (CTX, CTX), (2, 1)] {
        let (x, sums, k) = reference(&mel, keys, rows);
        let out = e.forward(&mel, keys, rows, Layers::All);
        close(&out.x, &x, "hidden");
        close(&out.keys, &k, "keys");
        assert_eq!(out.received.len(), LAYERS);
        for (l, (i, r)) in out.received.iter().enumerate() {
            assert_eq!(*i, l);
            // The mean over heads of each column's sum.
            let want: Vec<f64> = (0..CTX)
                .map(|j| (0..HEADS).map(|h| sums[l][h * CTX + j]).sum::<f64>() / HEADS as f64)
                .collect();
            close(
                &r.scores(HEADS, CTX, crate::model::scores::Pooling::None),
                &want,
                "sums",
            );
        }
        // The last layer alone, and a second call on the reused buffers: the same bits.
        let again = e.forward(&mel, keys, rows, Layers::Last);
        assert_eq!(again.x, out.x);
        assert_eq!(again.received.len(), 1);
        assert_eq!(again.received[0].0, LAYERS - 1);
    }
}

#[test]
fn the_final_norm_normalises_each_row() {
    let e = encoder();
    let mut x = Rng(5).take(3 * D, 2.0);
    let want = layer_norm(
        &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &weights()["ln_g"].0,
        &weights()["ln_b"].0,
    );
    e.final_norm(&mut x);
    close(&x, &want, "normed");
}

#[test]
fn dropping_rows_part_way_matches_the_definition() {
    let e = encoder();
    let mel = Rng(7).take(MELS * 2 * CTX, 1.0);
    // Keeping every row is the plain encoder, bit for bit.
    let part = e.forward_until(&mel, CTX, 3, 1);
    assert_eq!(part.layer, 0);
    assert_eq!(
        e.forward_from(&part.x, 1),
        e.forward(&mel, CTX, 3, Layers::Last).x
    );
    // Layer 0's received attention is the full pass's.
    let every = e.forward(&mel, CTX, 3, Layers::All);
    let scores = |r: &Received| r.scores(HEADS, CTX, crate::model::scores::Pooling::None);
    assert_eq!(scores(&part.received), scores(&every.received[0].1));
    // Rows 0, 2 and 4 only after layer 0: the definition's layer over those three rows.
    let kept: Vec<f32> = [0, 2, 4]
        .iter()
        .flat_map(|&r| part.x[r * D..(r + 1) * D].to_vec())
        .collect();
    let mut want: Vec<f64> = kept.iter().map(|&v| f64::from(v)).collect();
    reference_layer(&mut want, 3, 3);
    close(&e.forward_from(&kept, 1), &want, "dropped");
}
