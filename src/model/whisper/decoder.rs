//! Batched greedy decoding. Every sequence (a pruning run's kept tokens of one window) has its
//! own cross-attention memory of its own length; all sequences advance one token per step so
//! that each step reads the decoder weights, above all the 51864 x d output projection, once
//! for the whole batch instead of once per run. Attention itself is small and ragged, so it is
//! written out over plain slices instead of padded tensors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Module, Tensor};
use rayon::prelude::*;

use super::argmax::{argmax_among, argmax_unsuppressed, Screen, SCREEN_ROWS};
use super::attention::{self, attend_parts, to_heads, Kv, Memory};
use super::config::WhisperConfig;
use crate::model::kernels::{self, Matrix};
use crate::model::nn::{LayerNorm, Linear, TensorSource, Weights};
use crate::model::{Ending, ModelError, Result};

/// A linear layer as plain row-major weights, for the few-row products of a decoding step.
struct Dense {
    w: Matrix,
    b: Option<Vec<f32>>,
}

impl Dense {
    fn new(l: &Linear) -> Result<Dense> {
        Ok(Dense {
            w: Matrix::new(l.weight.flatten_all()?.to_vec1()?, l.weight.dim(0)?),
            b: match &l.bias {
                Some(b) => Some(b.to_vec1()?),
                None => None,
            },
        })
    }

    /// Several linear layers of the same input width as one: their output features side by
    /// side (each feature's arithmetic unchanged; a missing bias is zeros), one parallel pass
    /// instead of several.
    fn stacked(parts: &[&Linear]) -> Result<Dense> {
        let (mut w, mut b, mut rows) = (Vec::new(), Vec::new(), 0);
        for l in parts {
            let out = l.weight.dim(0)?;
            w.extend(l.weight.flatten_all()?.to_vec1::<f32>()?);
            match &l.bias {
                Some(bias) => b.extend(bias.to_vec1::<f32>()?),
                None => b.extend(std::iter::repeat_n(0.0, out)),
            }
            rows += out;
        }
        Ok(Dense {
            w: Matrix::new(w, rows),
            b: Some(b),
        })
    }

    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.w.linear(x, rows, self.b.as_deref())
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn new(l: &LayerNorm) -> Result<Norm> {
        Ok(Norm {
            gamma: l.weight.to_vec1()?,
            beta: l.bias.to_vec1()?,
        })
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = x.to_vec();
        kernels::layer_norm(&mut y, &self.gamma, &self.beta);
        y
    }
}

struct Layer {
    self_ln: Norm,
    /// The self-attention's query, key and value projections, stacked.
    self_qkv: Dense,
    self_out: Dense,
    cross_ln: Norm,
    cross_q: Dense,
    /// Applied once to whole memories: a real GEMM is the right tool there.
    cross_k: Linear,
    cross_v: Linear,
    cross_out: Dense,
    mlp_ln: Norm,
    fc1: Dense,
    fc2: Dense,
}

pub struct Decoder {
    /// Token embeddings, `vocab x d`; also the (tied) output projection.
    embed: Matrix,
    /// The same projection in int8 with error bounds: the exact greedy choice from half the
    /// bytes.
    screen: Screen,
    positions: Vec<f32>,
    layers: Vec<Layer>,
    ln: Norm,
    heads: usize,
    d_model: usize,
    vocab: usize,
    max_positions: usize,
}

impl Decoder {
    pub fn load(w: &Weights, c: &WhisperConfig) -> Result<Decoder> {
        let (d, p) = (c.d_model, "model.decoder");
        let layers = (0..c.decoder_layers)
            .map(|i| {
                let l = format!("{p}.layers.{i}");
                let lin = |n: &str, bias| w.linear(&format!("{l}.{n}"), d, d, bias);
                let dense = |n: &str, bias| Dense::new(&lin(n, bias)?);
                let norm = |n: &str| Norm::new(&w.layer_norm(&format!("{l}.{n}"), d)?);
                Ok(Layer {
                    self_ln: norm("self_attn_layer_norm")?,
                    self_qkv: Dense::stacked(&[
                        &lin("self_attn.q_proj", true)?,
                        &lin("self_attn.k_proj", false)?,
                        &lin("self_attn.v_proj", true)?,
                    ])?,
                    self_out: dense("self_attn.out_proj", true)?,
                    cross_ln: norm("encoder_attn_layer_norm")?,
                    cross_q: dense("encoder_attn.q_proj", true)?,
                    cross_k: lin("encoder_attn.k_proj", false)?,
                    cross_v: lin("encoder_attn.v_proj", true)?,
                    cross_out: dense("encoder_attn.out_proj", true)?,
                    mlp_ln: norm("final_layer_norm")?,
                    fc1: Dense::new(&w.linear(&format!("{l}.fc1"), d, 4 * d, true)?)?,
                    fc2: Dense::new(&w.linear(&format!("{l}.fc2"), 4 * d, d, true)?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embed = Matrix::new(
            w.get(&format!("{p}.embed_tokens.weight"), &[c.vocab_size, d])?
                .flatten_all()?
                .to_vec1()?,
            c.vocab_size,
        );
        Ok(Decoder {
            screen: Screen::new(&embed),
            embed,
            positions: w
                .get(
                    &format!("{p}.embed_positions.weight"),
                    &[c.max_target_positions, d],
                )?
                .flatten_all()?
                .to_vec1()?,
            layers,
            ln: Norm::new(&w.layer_norm(&format!("{p}.layer_norm"), d)?)?,
            heads: c.decoder_attention_heads,
            d_model: d,
            vocab: c.vocab_size,
            max_positions: c.max_target_positions,
        })
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// Keys and values of rows shared by several sequences (a window's silence tail), per layer,
/// laid out `(heads, n, head_dim)`.
struct SharedKv {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// Per-sequence, per-layer attention state, laid out `(heads, positions, head_dim)`.
struct LayerCache {
    cross_k: Vec<f32>,
    cross_v: Vec<f32>,
    self_k: Vec<f32>,
    self_v: Vec<f32>,
}

struct Sequence {
    /// Index in the caller's batch.
    index: usize,
    memory_len: usize,
    layers: Vec<LayerCache>,
    /// Rows attended to after the sequence's own memory.
    tail: Option<Arc<SharedKv>>,
    prompt: Vec<u32>,
    generated: Vec<u32>,
    /// End the decode where a loop is detected (`--stop-on-loop`).
    guard: bool,
    /// Collect the alignment heads' cross-attention to the memory.
    record: bool,
    /// FastV: the memory rows to keep after the first decoding step, and the sum over every
    /// head and layer of that step's cross-attention to the memory.
    fastv: Option<usize>,
    fastv_sum: Vec<f32>,
    /// The memory rows kept (FastV), ascending.
    kept: Option<Vec<usize>>,
    /// Per alignment head, one row of `memory_len` weights per token chosen so far.
    maps: Vec<Vec<f32>>,
    ms: f64,
    prefill_ms: f64,
    steps: usize,
}

/// A finished sequence's share of the wall time (ms): all of it, the cross-attention prefill's
/// part, and the decoding steps it took part in.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ms: f64,
    pub prefill_ms: f64,
    pub steps: usize,
    pub ending: Ending,
}

/// One batched greedy decoding job (SPEC.md section 5).
pub struct Job<'a> {
    pub decoder: &'a Decoder,
    pub suppress: &'a [bool],
    pub suppress_begin: &'a [bool],
    pub eot: u32,
    /// When non-empty, prompt slot 1 is the most likely of these tokens after slot 0.
    pub languages: &'a [u32],
    pub prompt: &'a [u32],
    pub max_tokens: usize,
    /// `(layer, head)` of the heads whose cross-attention a recording sequence collects.
    pub align_heads: &'a [(usize, usize)],
}

/// What each sequence of a job asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqOptions {
    /// End at the first loop (`--stop-on-loop`).
    pub guard: bool,
    /// Collect the alignment heads' attention.
    pub record: bool,
    /// FastV: keep this many memory rows after the first decoding step.
    pub fastv: Option<usize>,
}

/// A finished sequence: its batch index, the generated ids without the prompt and
/// <|endoftext|>, its timing; for a recording sequence, per alignment head, `rows x memory_len`
/// weights, one row per position fed: the prompt's, then one per generated token (row
/// `prompt - 1 + i` chose token `i`; the last row chose the end token when the decode ended
/// with it), else empty; the memory rows FastV kept (the maps' columns are these).
pub struct Done {
    pub index: usize,
    pub ids: Vec<u32>,
    pub timing: Timing,
    pub maps: Vec<Vec<f32>>,
    pub kept: Option<Vec<usize>>,
}

pub type Finished<'a> = dyn FnMut(Done) -> Result<()> + 'a;

impl Job<'_> {
    /// Decodes every memory (followed by `tails[i]` where given: equal `Arc`s share their keys
    /// and values), sequence `i` as `options[i]` asks.
    pub fn run(
        &self,
        memories: &[&Tensor],
        tails: &[Option<&Arc<Tensor>>],
        options: &[SeqOptions],
        cancel: &AtomicBool,
        finished: &mut Finished<'_>,
    ) -> Result<()> {
        if memories.is_empty() {
            return Ok(());
        }
        let dec = self.decoder;
        let total_positions = self.prompt.len() + self.max_tokens;
        if total_positions > dec.max_positions {
            return Err(ModelError::Config {
                path: Default::default(),
                msg: format!(
                    "prompt plus {} tokens exceeds the decoder's {} positions",
                    self.max_tokens, dec.max_positions
                ),
            });
        }
        let t0 = Instant::now();
        let mut active = self.prefill(memories, tails, total_positions)?;
        for s in active.iter_mut() {
            let o = options.get(s.index).copied().unwrap_or_default();
            s.guard = o.guard;
            s.record = o.record;
            s.fastv = o.fastv.filter(|&k| k < s.memory_len);
            if s.record {
                s.maps = vec![Vec::new(); self.align_heads.len()];
            }
        }
        let total_len: usize = active.iter().map(|s| s.memory_len.max(1)).sum();
        let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        for s in active.iter_mut() {
            s.prefill_ms = prefill_ms * s.memory_len.max(1) as f64 / total_len as f64;
            s.ms += s.prefill_ms;
        }

        let mut pos = 0;
        while !active.is_empty() {
            if cancel.load(Ordering::Relaxed) {
                return Err(ModelError::Cancelled);
            }
            let step_start = Instant::now();
            let in_prompt = pos + 1 < self.prompt.len();
            let tokens: Vec<u32> = active
                .iter()
                .map(|s| {
                    if pos < s.prompt.len() {
                        s.prompt[pos]
                    } else {
                        s.generated[pos - s.prompt.len()]
                    }
                })
                .collect();
            let detect = pos == 0 && !self.languages.is_empty();
            let need_logits = !in_prompt || detect;
            let hidden = self.step(&mut active, &tokens, pos, need_logits)?;
            if pos + 1 == self.prompt.len() {
                for s in active.iter_mut().filter(|s| s.fastv.is_some()) {
                    self.keep_ranked(s);
                }
            }
            if let Some(x) = hidden {
                self.choose(&mut active, &x, detect, in_prompt);
            }
            let share = step_start.elapsed().as_secs_f64() * 1e3 / active.len() as f64;
            let mut keep = Vec::with_capacity(active.len());
            for mut s in active.drain(..) {
                s.ms += share;
                s.steps += 1;
                let ending = match s.generated.last() {
                    Some(&t) if t == self.eot => {
                        s.generated.pop();
                        Some(Ending::EndToken)
                    }
                    None => None,
                    Some(_) => Ending::guard(&mut s.generated, s.guard)
                        .or((s.generated.len() >= self.max_tokens).then_some(Ending::Cap)),
                };
                if let Some(ending) = ending {
                    let t = Timing {
                        ms: s.ms,
                        prefill_ms: s.prefill_ms,
                        steps: s.steps,
                        ending,
                    };
                    // Rows past the kept tokens (cut by the loop guard) go; the end token's
                    // row stays.
                    let rows = s.prompt.len() + s.generated.len();
                    for m in s.maps.iter_mut() {
                        m.truncate(rows * s.memory_len);
                    }
                    finished(Done {
                        index: s.index,
                        ids: std::mem::take(&mut s.generated),
                        timing: t,
                        maps: std::mem::take(&mut s.maps),
                        kept: s.kept.take(),
                    })?;
                } else {
                    keep.push(s);
                }
            }
            active = keep;
            pos += 1;
        }
        Ok(())
    }

    /// The greedy choices of a step from its final hidden states `x`: slot 1 of the prompt
    /// (`detect`: the language) and, past the prompt, the next token of every sequence.
    fn choose(&self, seqs: &mut [Sequence], x: &[f32], detect: bool, in_prompt: bool) {
        let dec = self.decoder;
        let b = seqs.len();
        let mask = |s: &Sequence| {
            if s.generated.is_empty() {
                self.suppress_begin
            } else {
                self.suppress
            }
        };
        if !detect && !in_prompt && b <= SCREEN_ROWS {
            let masks: Vec<&[bool]> = seqs.iter().map(mask).collect();
            let tokens = dec.screen.choose(&dec.embed, x, b, &masks, self.eot);
            for (s, t) in seqs.iter_mut().zip(tokens) {
                s.generated.push(t);
            }
            return;
        }
        let vocab = dec.vocab;
        let logits = dec.embed.linear(x, b, None);
        for (i, s) in seqs.iter_mut().enumerate() {
            let row = &logits[i * vocab..(i + 1) * vocab];
            if detect {
                s.prompt[1] = argmax_among(row, self.languages);
            }
            if !in_prompt {
                let t = argmax_unsuppressed(row, mask(s), self.eot);
                s.generated.push(t);
            }
        }
    }

    /// Computes every sequence's cross-attention keys and values, all memories in one matmul per
    /// layer, each distinct tail once, and allocates the self-attention caches.
    fn prefill(
        &self,
        memories: &[&Tensor],
        tails: &[Option<&Arc<Tensor>>],
        positions: usize,
    ) -> Result<Vec<Sequence>> {
        let dec = self.decoder;
        let (h, hd, d) = (dec.heads, dec.head_dim(), dec.d_model);
        let lens: Vec<usize> = memories
            .iter()
            .map(|m| m.dim(0))
            .collect::<candle_core::Result<_>>()?;
        // Distinct tails (by pointer), their keys and values computed once.
        let mut shared: Vec<(*const Tensor, Arc<SharedKv>)> = Vec::new();
        for t in tails.iter().flatten() {
            if !shared.iter().any(|(p, _)| *p == Arc::as_ptr(t)) {
                shared.push((Arc::as_ptr(t), Arc::new(self.shared_kv(t)?)));
            }
        }
        let tail_of = |i: usize| -> Option<Arc<SharedKv>> {
            let t = tails.get(i).copied().flatten()?;
            shared
                .iter()
                .find(|(p, _)| *p == Arc::as_ptr(t))
                .map(|(_, kv)| kv.clone())
        };
        let all = Tensor::cat(memories, 0)?;
        let mut seqs: Vec<Sequence> = lens
            .iter()
            .enumerate()
            .map(|(index, &memory_len)| Sequence {
                index,
                memory_len,
                layers: Vec::with_capacity(dec.layers.len()),
                tail: tail_of(index),
                prompt: self.prompt.to_vec(),
                generated: Vec::with_capacity(self.max_tokens),
                guard: false,
                record: false,
                fastv: None,
                fastv_sum: Vec::new(),
                kept: None,
                maps: Vec::new(),
                ms: 0.0,
                prefill_ms: 0.0,
                steps: 0,
            })
            .collect();
        for layer in &dec.layers {
            let k = layer
                .cross_k
                .forward(&all)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let v = layer
                .cross_v
                .forward(&all)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let mut offset = 0;
            for s in seqs.iter_mut() {
                let n = s.memory_len;
                let rows = offset..offset + n * d;
                s.layers.push(LayerCache {
                    cross_k: to_heads(&k[rows.clone()], n, h, hd),
                    cross_v: to_heads(&v[rows], n, h, hd),
                    self_k: vec![0.0; h * positions * hd],
                    self_v: vec![0.0; h * positions * hd],
                });
                offset += n * d;
            }
        }
        Ok(seqs)
    }

    /// FastV: after the step that chose the first token, keep the memory rows its
    /// cross-attention (summed over every head and layer) ranks first; the rest of the run reads
    /// only those (and the shared tail), and the recorded maps keep only their columns.
    fn keep_ranked(&self, s: &mut Sequence) {
        let Some(k) = s.fastv.take() else { return };
        let kept = crate::model::top_k(&s.fastv_sum, k);
        let (h, hd, n) = (self.decoder.heads, self.decoder.head_dim(), s.memory_len);
        let gather = |rows: &[f32], width: usize| -> Vec<f32> {
            let mut out = Vec::with_capacity(h * kept.len() * width);
            for head in 0..h {
                for &r in &kept {
                    let at = (head * n + r) * width;
                    out.extend_from_slice(&rows[at..at + width]);
                }
            }
            out
        };
        for c in s.layers.iter_mut() {
            c.cross_k = gather(&c.cross_k, hd);
            c.cross_v = gather(&c.cross_v, hd);
        }
        for m in s.maps.iter_mut() {
            *m = m
                .chunks_exact(n)
                .flat_map(|row| kept.iter().map(|&c| row[c]))
                .collect();
        }
        s.memory_len = kept.len();
        s.fastv_sum = Vec::new();
        s.kept = Some(kept);
    }

    /// Cross-attention keys and values of rows several sequences share.
    fn shared_kv(&self, rows: &Tensor) -> Result<SharedKv> {
        let dec = self.decoder;
        let (h, hd) = (dec.heads, dec.head_dim());
        let n = rows.dim(0)?;
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for layer in &dec.layers {
            let kl = layer
                .cross_k
                .forward(rows)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let vl = layer
                .cross_v
                .forward(rows)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            k.push(to_heads(&kl, n, h, hd));
            v.push(to_heads(&vl, n, h, hd));
        }
        Ok(SharedKv { k, v })
    }

    /// Feeds one token per active sequence at position `pos`; returns the `(batch, d)` final
    /// hidden states (normalised, ready for the output projection) when asked. Each layer is
    /// pre-norm: `x += SelfAttention(LN(x))`, `x += CrossAttention(LN(x), memory)`,
    /// `x += MLP(LN(x))`. Recording sequences keep their alignment heads' weights; on the step
    /// that chooses the first token, FastV sequences sum their cross-attention over heads and
    /// layers.
    fn step(
        &self,
        seqs: &mut [Sequence],
        tokens: &[u32],
        pos: usize,
        need_logits: bool,
    ) -> Result<Option<Vec<f32>>> {
        let first_choice = pos + 1 == self.prompt.len();
        let dec = self.decoder;
        let b = seqs.len();
        let mut x = self.embed(tokens, pos)?;
        for (l, layer) in dec.layers.iter().enumerate() {
            let y = layer.self_ln.apply(&x);
            add(&mut x, &self.self_attention(l, &y, seqs, pos));
            let y = layer.cross_ln.apply(&x);
            add(&mut x, &self.cross_attention(l, &y, seqs, first_choice));
            let y = layer.mlp_ln.apply(&x);
            add(&mut x, &layer.mlp(&y, b));
        }
        if !need_logits {
            return Ok(None);
        }
        Ok(Some(dec.ln.apply(&x)))
    }

    /// The decoder's input at position `pos`: each token's embedding plus the position's.
    fn embed(&self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let dec = self.decoder;
        let d = dec.d_model;
        let mut x = vec![0f32; tokens.len() * d];
        let position = &dec.positions[pos * d..(pos + 1) * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            let t = t as usize;
            if t >= dec.vocab {
                return Err(ModelError::Tokenizer(format!("token id {t} out of range")));
            }
            dec.embed.row_into(t, row);
            for (o, p) in row.iter_mut().zip(position) {
                *o += p;
            }
        }
        Ok(x)
    }

    /// Layer `l`'s self-attention of the normed inputs `y` over each sequence's own past: this
    /// step's keys and values join the sequence's cache at `pos`, and every head attends over
    /// positions `0..=pos`. Returns the output projection, what the residual adds.
    fn self_attention(&self, l: usize, y: &[f32], seqs: &mut [Sequence], pos: usize) -> Vec<f32> {
        let dec = self.decoder;
        let layer = &dec.layers[l];
        let (h, hd, d) = (dec.heads, dec.head_dim(), dec.d_model);
        let b = seqs.len();
        let scale = 1.0 / (hd as f32).sqrt();
        let positions = self.prompt.len() + self.max_tokens;
        // Each row: the query (scaled here), the key, the value.
        let mut qkv = layer.self_qkv.forward(y, b);
        for row in qkv.chunks_exact_mut(3 * d) {
            row[..d].iter_mut().for_each(|v| *v *= scale);
        }
        for (i, s) in seqs.iter_mut().enumerate() {
            let c = &mut s.layers[l];
            for head in 0..h {
                let dst = (head * positions + pos) * hd;
                let src = i * 3 * d + head * hd;
                c.self_k[dst..dst + hd].copy_from_slice(&qkv[src + d..src + d + hd]);
                c.self_v[dst..dst + hd].copy_from_slice(&qkv[src + 2 * d..src + 2 * d + hd]);
            }
        }
        let mut out = vec![0f32; b * d];
        out.par_chunks_mut(hd).enumerate().for_each(|(task, o)| {
            let (i, head) = (task / h, task % h);
            let c = &seqs[i].layers[l];
            let base = head * positions * hd;
            let n = pos + 1;
            attend_parts(
                &qkv[i * 3 * d + head * hd..i * 3 * d + (head + 1) * hd],
                &[(
                    &c.self_k[base..base + n * hd],
                    &c.self_v[base..base + n * hd],
                )],
                o,
                None,
            );
        });
        layer.self_out.forward(&out, b)
    }

    /// Layer `l`'s cross-attention of the normed inputs `y` over each sequence's kept encoder
    /// tokens, then its tail. Returns the output projection, what the residual adds; the
    /// weights recording and FastV sequences want go to [`Job::keep_cross_weights`].
    fn cross_attention(
        &self,
        l: usize,
        y: &[f32],
        seqs: &mut [Sequence],
        first_choice: bool,
    ) -> Vec<f32> {
        let dec = self.decoder;
        let layer = &dec.layers[l];
        let (h, d) = (dec.heads, dec.d_model);
        let b = seqs.len();
        let scale = 1.0 / (dec.head_dim() as f32).sqrt();
        let mut q = layer.cross_q.forward(y, b);
        q.iter_mut().for_each(|v| *v *= scale);
        let mut out = vec![0f32; b * d];
        let memories: Vec<Memory> = seqs.iter().map(|s| s.memory(l)).collect();
        let wants = |i: usize, head: usize| {
            let s = &seqs[i];
            (s.record && self.align_slot(l, head).is_some()) || (first_choice && s.fastv.is_some())
        };
        let weights = attention::cross_attention(&q, &memories, h, &mut out, &wants);
        drop(memories);
        self.keep_cross_weights(l, seqs, weights, first_choice);
        layer.cross_out.forward(&out, b)
    }

    /// Where head `head` of layer `l` is among the alignment heads.
    fn align_slot(&self, l: usize, head: usize) -> Option<usize> {
        self.align_heads.iter().position(|&a| a == (l, head))
    }

    /// Layer `l`'s cross-attention weights over the own memory, per task `i * heads + head`
    /// where asked: a recording sequence appends its alignment heads' rows to its maps; on the
    /// step that chooses the first token, a FastV sequence adds every head's to its sum.
    fn keep_cross_weights(
        &self,
        l: usize,
        seqs: &mut [Sequence],
        weights: Vec<Option<Vec<f32>>>,
        first_choice: bool,
    ) {
        let h = self.decoder.heads;
        for (task, p) in weights.into_iter().enumerate() {
            let Some(p) = p else { continue };
            let head = task % h;
            let s = &mut seqs[task / h];
            if let Some(slot) = s.record.then(|| self.align_slot(l, head)).flatten() {
                s.maps[slot].extend_from_slice(&p);
            }
            if first_choice && s.fastv.is_some() {
                s.fastv_sum.resize(p.len(), 0.0);
                for (a, x) in s.fastv_sum.iter_mut().zip(&p) {
                    *a += x;
                }
            }
        }
    }
}

impl Sequence {
    /// Layer `l`'s cross-attention memory: the own rows' keys and values, then the shared
    /// tail's (identified by its allocation, so sequences of one window share its reads).
    fn memory(&self, l: usize) -> Memory<'_> {
        Memory {
            own: Kv {
                k: &self.layers[l].cross_k,
                v: &self.layers[l].cross_v,
            },
            tail: self.tail.as_ref().map(|t| {
                let id = Arc::as_ptr(t) as usize;
                (
                    id,
                    Kv {
                        k: &t.k[l],
                        v: &t.v[l],
                    },
                )
            }),
        }
    }
}

impl Layer {
    /// The MLP of the normed inputs `y` (`rows` rows): `fc2(GELU(fc1(y)))`.
    fn mlp(&self, y: &[f32], rows: usize) -> Vec<f32> {
        let mut f = self.fc1.forward(y, rows);
        kernels::gelu(&mut f);
        self.fc2.forward(&f, rows)
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
