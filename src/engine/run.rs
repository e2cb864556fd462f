//! Decoding every run of a plan: each run's selection and decoder inputs, every input of every
//! run decoded together (the model batches them), and the results assembled per run as its
//! last window finishes.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::words::{self, RunAttention};
use super::{
    decoder_inputs, select, Decoding, EncodedClip, Plan, Progress, Result, RunMethod, RunSpec,
    Tail, TailRows, Unavailable,
};
use crate::model::align::TimedWord;
use crate::model::{
    AudioLanguageModel, DecodeInput, DroppedWindow, EncoderDrop, FastV, Generation, ModelError,
};
use crate::prune::{self, Method, Params, Selection};

/// One run of the `analyze` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Written as its name.
    #[serde(serialize_with = "method_name", deserialize_with = "method_of_name")]
    pub method: RunMethod,
    pub keep: f64,
    pub segments: Option<usize>,
    pub k: usize,
    /// (Defaults, here and below: eval results files written before they were stored.)
    #[serde(default)]
    pub kept: Vec<usize>,
    #[serde(default)]
    pub tail_tokens: usize,
    pub text: String,
    pub decode_ms: f64,
    /// Prefill time (ms, part of `decode_ms`): an LLM's prompt pass, Whisper's cross-attention
    /// keys and values (its share in a batch). Summed over windows.
    pub prefill_ms: Option<f64>,
    /// Decoding time after the prefill per step (ms); None when no step followed the prefill.
    pub decode_ms_per_token: Option<f64>,
    pub generated_tokens: usize,
    #[serde(default)]
    pub token_ids: Vec<u32>,
    /// Whether any window's decode looped (hit its cap, repeated itself back to back, or
    /// compressed too well: `model::repetition`).
    #[serde(default)]
    pub looped: bool,
    /// Byte ranges of `text` that repeat what precedes them (the explorer dims them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loop_spans: Vec<[usize; 2]>,
    /// The `--stop-on-loop` guard cut at least one window's decode.
    #[serde(default)]
    pub stopped_on_loop: bool,
    /// With [`Decoding::attention`]: the words of `text` in clip time (`analyze --words`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TimedWord>>,
    /// With [`Decoding::attention`]: the attention from each output token to the audio
    /// (`analyze --attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<RunAttention>,
    /// The selection's merged tokens, each with its group's members and weights (their
    /// attention is placed on every member); left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<prune::Combination>,
    /// Time spent choosing the tokens with the model before the decode (`promptaware`'s
    /// scoring pass, ms): part of `prefill_ms` and `decode_ms`; left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scoring_ms: f64,
    /// `encoderdrop`: this run's own encoder time (ms; the layers before the drop, shared by
    /// the plan's runs, plus its own after it), against the clip's full `encode_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_ms: Option<f64>,
    /// `encoderdrop`: the encoder layers that read every token before the drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_layer: Option<usize>,
}

fn method_name<S: serde::Serializer>(m: &RunMethod, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

fn method_of_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<RunMethod, D::Error> {
    let name = String::deserialize(d)?;
    RunMethod::parse(&name).map_err(serde::de::Error::custom)
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[cfg(test)]
impl RunResult {
    /// A top-K run at keep 0.5 (K 1, token 0 kept, 50 tail tokens, 2 generated in 1 ms) that said
    /// `text`: what tests of the cells and the exports need of a result.
    pub(crate) fn sample(text: &str) -> RunResult {
        RunResult {
            method: super::RunMethod::Prune(crate::prune::Method::TopK),
            keep: 0.5,
            segments: None,
            k: 1,
            kept: vec![0],
            tail_tokens: 50,
            text: text.into(),
            decode_ms: 1.0,
            prefill_ms: None,
            decode_ms_per_token: None,
            generated_tokens: 2,
            token_ids: vec![],
            looped: false,
            loop_spans: vec![],
            stopped_on_loop: false,
            words: None,
            attention: None,
            merged: vec![],
            scoring_ms: 0.0,
            encode_ms: None,
            drop_layer: None,
        }
    }
}

impl RunResult {
    /// A run's selection before its decode: no text, times or tokens yet ([`fill_text`] adds
    /// them). `selection` is None for vanilla, which reads each of the clip's `n` tokens.
    pub(super) fn before_decoding(
        spec: &RunSpec,
        selection: Option<&Selection>,
        n: usize,
        scoring_ms: f64,
    ) -> RunResult {
        let (keep, segments, k, kept, merged) = match selection {
            Some(s) => (spec.keep, s.segments, s.k, s.kept.clone(), s.merged.clone()),
            None => (1.0, None, n, (0..n).collect(), Vec::new()),
        };
        RunResult {
            method: spec.method,
            keep,
            segments,
            k,
            kept,
            tail_tokens: 0,
            text: String::new(),
            decode_ms: 0.0,
            prefill_ms: None,
            decode_ms_per_token: None,
            generated_tokens: 0,
            token_ids: Vec::new(),
            looped: false,
            loop_spans: Vec::new(),
            stopped_on_loop: false,
            words: None,
            attention: None,
            merged,
            scoring_ms,
            encode_ms: None,
            drop_layer: None,
        }
    }

    /// The run's tokens as a selection: the tokens its decoder read (for fastv, those the model
    /// kept), the budget and segments, merged tokens; the rule is [`RunMethod::rule`].
    pub fn selection(&self) -> Selection {
        Selection {
            method: self.method.rule(),
            k: self.k,
            segments: self.segments,
            kept: self.kept.clone(),
            merged: self.merged.clone(),
        }
    }
}

/// Selects and decodes every run of `plan` on an encoded clip.
pub fn run(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    plan: &Plan,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<RunResult>> {
    run_with(model, clip, plan, cancel, progress, &mut |_, _| {})
}

/// Memory rows (kept tokens; a window's shared silence context apart) decoded together at most:
/// the decoder holds every sequence's cross-attention keys and values while they decode
/// (tiny.en: 12 KB a row, so about 200 MB), and a long clip's inputs are built chunk by chunk,
/// so memory stays flat however long the clip.
const CHUNK_ROWS: usize = 16_000;

/// [`run`], also calling `on_run(run index, result)` as soon as each run's last window is
/// decoded (the GUI fills its grid cell by cell). The results passed equal the returned ones.
pub fn run_with(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    plan: &Plan,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(Progress) + Send),
    on_run: &mut (dyn FnMut(usize, &RunResult) + Send),
) -> Result<Vec<RunResult>> {
    plan.validate()?;
    let info = model.info();
    plan.check_runs(info)?;
    // The encoder passes of `encoderdrop` runs (their shared layers once per window).
    let mut dropped = encoder_drops(model, clip, plan, cancel)?;
    // Every run's selection first (cheap); its decoder inputs are built when its turn comes.
    let mut runs = plan
        .runs
        .iter()
        .enumerate()
        .map(|(i, spec)| PendingRun::select(model, clip, spec, plan, dropped.remove(&i)))
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Reports {
        progress,
        on_run,
        done: 0,
        of: runs
            .iter()
            .map(|r| input_count(clip, r.selection.as_ref(), info.prefix_lm))
            .sum(),
    };
    let layout = Layout::of(clip, info.prefix_lm, info.seconds_per_token);
    let mut builder = InputBuilder {
        clip,
        decoding: &plan.decoding,
        // Models without a silence context (the prefix ones) take none.
        tail: if info.has_tail {
            plan.decoding.tail
        } else {
            Tail::Tokens(0)
        },
        prefix: info.prefix_lm,
        tails: TailRows::default(),
    };
    let mut queue = VecDeque::new();
    let mut next_run = 0;
    loop {
        while next_run < runs.len() && queued_rows(&queue) < CHUNK_ROWS {
            builder.queue(next_run, &mut runs[next_run], &mut queue)?;
            next_run += 1;
        }
        let chunk = next_chunk(&mut queue);
        if chunk.is_empty() {
            break;
        }
        decode_chunk(model, chunk, &mut runs, &layout, cancel, &mut reports)?;
    }
    Ok(runs.into_iter().map(|r| r.finish(&layout)).collect())
}

/// One run on its way through the decoder: its selection, its result (the selection's part
/// first, the decode's once its last window is in) and its windows' generations.
struct PendingRun<'p> {
    spec: &'p RunSpec,
    /// None for vanilla (every valid token, the whole padding).
    selection: Option<Selection>,
    /// `encoderdrop`: each window's own encoder output, `(window, output)`.
    dropped: Option<Vec<(usize, DroppedWindow)>>,
    result: RunResult,
    /// Decoder inputs queued and not finished yet.
    waiting: usize,
    /// `(window, generation)` as the model reported each finished input.
    finished: Vec<(usize, Generation)>,
    /// `(window, generation)` as `generate` returned them, for a run the reports did not
    /// complete.
    returned: Vec<(usize, Generation)>,
    /// Its result was assembled from `finished` and handed to `on_run`.
    assembled: bool,
}

impl<'p> PendingRun<'p> {
    /// The run's selection: `promptaware`'s by the model's prompt scores, `encoderdrop`'s by
    /// its encoder (`dropped`: each window's output), the others' by [`select`].
    fn select(
        model: &dyn AudioLanguageModel,
        clip: &EncodedClip,
        spec: &'p RunSpec,
        plan: &Plan,
        dropped: Option<Vec<(usize, DroppedWindow)>>,
    ) -> Result<PendingRun<'p>> {
        let (selection, scoring_ms) = match (spec.method, &dropped) {
            (RunMethod::PromptAware, _) => {
                let (sel, ms) = prompt_aware(model, clip, spec.keep, plan)?;
                (Some(sel), ms)
            }
            (RunMethod::SpeechPrune, _) => {
                let prompt = plan.decoding.prompt.as_deref();
                let (sel, ms) = speechprune_selection(model, clip, spec.keep, prompt)?;
                (Some(sel), ms)
            }
            (RunMethod::EncoderDrop, Some(windows)) => (Some(drop_selection(clip, windows)), 0.0),
            _ => (select(clip, spec, &plan.params)?, 0.0),
        };
        let mut result =
            RunResult::before_decoding(spec, selection.as_ref(), clip.n_tokens(), scoring_ms);
        if let Some(windows) = &dropped {
            result.encode_ms = Some(windows.iter().map(|(_, d)| d.encode_ms).sum());
            result.drop_layer = Some(plan.decoding.drop_layer_of(model.info()));
        }
        Ok(PendingRun {
            spec,
            selection,
            dropped,
            result,
            waiting: 0,
            finished: Vec::new(),
            returned: Vec::new(),
            assembled: false,
        })
    }

    /// Takes window `window`'s generation as the model reports it; assembles the result when
    /// it was the last one waiting (then true).
    fn on_finished(&mut self, window: usize, g: &Generation, layout: &Layout) -> bool {
        self.finished.push((window, g.clone()));
        self.waiting -= 1;
        if self.waiting > 0 || self.assembled {
            return false;
        }
        fill_text(&mut self.result, std::mem::take(&mut self.finished), layout);
        self.assembled = true;
        true
    }

    /// The run's result: as assembled, or from the generations `generate` returned.
    fn finish(mut self, layout: &Layout) -> RunResult {
        if !self.assembled {
            fill_text(&mut self.result, self.returned, layout);
        }
        self.result
    }
}

/// A decoder input built and not decoded yet.
struct Queued {
    run: usize,
    window: usize,
    input: DecodeInput,
    /// Its own memory rows: a window's silence context is shared by its runs (one copy of its
    /// keys and values), so it does not count.
    rows: usize,
}

/// What every run's decoder inputs are built from.
struct InputBuilder<'a> {
    clip: &'a EncodedClip,
    decoding: &'a Decoding,
    /// The silence context after each window's kept tokens (none for prefix models).
    tail: Tail,
    prefix: bool,
    /// Each window's silence-context rows, shared by every run's inputs.
    tails: TailRows,
}

impl InputBuilder<'_> {
    /// Builds run `r`'s decoder inputs and queues them: the plan's decoding options on each,
    /// FastV's budget per input (the run's K is their sum), the tail tokens counted.
    fn queue(
        &mut self,
        r: usize,
        run: &mut PendingRun,
        queue: &mut VecDeque<Queued>,
    ) -> Result<()> {
        let inputs = match &run.dropped {
            Some(windows) => dropped_inputs(windows, self.prefix)?,
            None => decoder_inputs(
                self.clip,
                run.selection.as_ref(),
                self.tail,
                self.prefix,
                &mut self.tails,
            )?,
        };
        let fastv = run.spec.method == RunMethod::FastV;
        let mut fastv_k = 0;
        for (window, mut input, tail_tokens) in inputs {
            input.prompt = self.decoding.prompt.clone();
            input.stop_on_loop = self.decoding.stop_on_loop;
            input.attention = self.decoding.attention;
            let rows = input.memory.dim(0).map_err(ModelError::from)?;
            if fastv {
                let keep = prune::budget(run.spec.keep, rows);
                fastv_k += keep;
                input.fastv = Some(FastV {
                    keep,
                    layer: self.decoding.fastv_layer,
                });
            }
            run.result.tail_tokens += tail_tokens;
            run.waiting += 1;
            queue.push_back(Queued {
                run: r,
                window,
                input,
                rows,
            });
        }
        if fastv {
            run.result.k = fastv_k;
        }
        Ok(())
    }
}

fn queued_rows(queue: &VecDeque<Queued>) -> usize {
    queue.iter().map(|q| q.rows).sum()
}

/// The next chunk to decode: inputs from the front of the queue up to [`CHUNK_ROWS`] memory
/// rows (at least one input while any waits).
fn next_chunk(queue: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut chunk = Vec::new();
    let mut rows = 0;
    while let Some(front) = queue.front() {
        if !chunk.is_empty() && rows + front.rows > CHUNK_ROWS {
            break;
        }
        rows += front.rows;
        chunk.extend(queue.pop_front());
    }
    chunk
}

/// Where a decode reports to: the progress of every input, and each run as it completes.
struct Reports<'c> {
    progress: &'c mut (dyn FnMut(Progress) + Send),
    on_run: &'c mut (dyn FnMut(usize, &RunResult) + Send),
    /// Inputs decoded so far, of all the runs'.
    done: usize,
    of: usize,
}

/// Decodes one chunk of inputs as a batch. Each run is assembled and reported as its last
/// input finishes; the returned generations are kept for runs the model's reports left
/// incomplete.
fn decode_chunk(
    model: &dyn AudioLanguageModel,
    chunk: Vec<Queued>,
    runs: &mut [PendingRun],
    layout: &Layout,
    cancel: &AtomicBool,
    reports: &mut Reports,
) -> Result<()> {
    let owners: Vec<(usize, usize)> = chunk.iter().map(|q| (q.run, q.window)).collect();
    let inputs: Vec<DecodeInput> = chunk.into_iter().map(|q| q.input).collect();
    let generations = model.generate(&inputs, cancel, &mut |i, g| {
        reports.done += 1;
        (reports.progress)(Progress::Decoded {
            done: reports.done,
            of: reports.of,
        });
        let Some(&(r, window)) = owners.get(i) else {
            return;
        };
        if runs[r].on_finished(window, g, layout) {
            (reports.on_run)(r, &runs[r].result);
        }
    })?;
    for ((r, window), g) in owners.into_iter().zip(generations) {
        if !runs[r].assembled {
            runs[r].returned.push((window, g));
        }
    }
    Ok(())
}

/// How many decoder inputs a run has: one for a prefix model, else one per window that keeps a
/// token (every window for vanilla), as [`decoder_inputs`] builds them.
fn input_count(clip: &EncodedClip, sel: Option<&Selection>, prefix: bool) -> usize {
    match (prefix, sel) {
        (true, _) => 1,
        (false, None) => clip.windows.len(),
        (false, Some(s)) => {
            let mut windows: Vec<usize> = s.kept.iter().map(|&t| clip.window_of(t)).collect();
            windows.sort_unstable();
            windows.dedup();
            windows.len()
        }
    }
}

/// The encoder outputs of the plan's `encoderdrop` runs, by run index: each window encoded
/// once up to the drop layer, then once per run after it (Whisper-style models: each window's
/// budget `K_w = budget(keep, n_valid)` and its silence context; prefix models: no tail).
fn encoder_drops(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    plan: &Plan,
    cancel: &AtomicBool,
) -> Result<std::collections::HashMap<usize, Vec<(usize, DroppedWindow)>>> {
    let runs: Vec<usize> = (0..plan.runs.len())
        .filter(|&i| plan.runs[i].method == RunMethod::EncoderDrop)
        .collect();
    let mut out: std::collections::HashMap<usize, Vec<(usize, DroppedWindow)>> =
        runs.iter().map(|&i| (i, Vec::new())).collect();
    if runs.is_empty() {
        return Ok(out);
    }
    let info = model.info();
    let layer = plan.decoding.drop_layer_of(info);
    for (w, win) in clip.windows.iter().enumerate() {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ModelError::Cancelled.into());
        }
        let tail = if info.has_tail {
            plan.decoding.tail.tokens(win.tokens - win.n_valid)
        } else {
            0
        };
        let drop = EncoderDrop {
            layer,
            keeps: runs
                .iter()
                .map(|&i| prune::budget(plan.runs[i].keep, win.n_valid))
                .collect(),
            tail,
        };
        let windows = model
            .encode_dropping(&clip.samples[win.samples.clone()], &drop)?
            .ok_or(Unavailable::NoEncoderDrop)?;
        for (&i, d) in runs.iter().zip(windows) {
            out.entry(i).or_default().push((w, d));
        }
    }
    Ok(out)
}

/// An `encoderdrop` run's tokens as a selection (clip indices, time order; K their count).
fn drop_selection(clip: &EncodedClip, windows: &[(usize, DroppedWindow)]) -> Selection {
    let kept: Vec<usize> = windows
        .iter()
        .flat_map(|(w, d)| d.kept.iter().map(|&t| clip.windows[*w].first_token + t))
        .collect();
    Selection {
        method: Method::TopK,
        k: kept.len(),
        segments: None,
        kept,
        merged: Vec::new(),
    }
}

/// An `encoderdrop` run's decoder inputs: each window that kept a token, its own encoder's
/// kept rows and (Whisper) its own silence context after them; for a prefix model, one input
/// of every window's kept rows in order.
fn dropped_inputs(
    windows: &[(usize, DroppedWindow)],
    prefix: bool,
) -> Result<Vec<(usize, DecodeInput, usize)>> {
    if prefix {
        let rows: Vec<candle_core::Tensor> =
            windows.iter().map(|(_, d)| d.hidden.clone()).collect();
        let memory = candle_core::Tensor::cat(&rows, 0).map_err(ModelError::from)?;
        return Ok(vec![(0, DecodeInput::new(memory), 0)]);
    }
    let mut out = Vec::new();
    for (w, d) in windows {
        if d.kept.is_empty() {
            continue;
        }
        let k = d.kept.len();
        let memory = d.hidden.narrow(0, 0, k).map_err(ModelError::from)?;
        let mut input = DecodeInput::new(memory);
        if d.tail > 0 {
            let tail = d.hidden.narrow(0, k, d.tail).map_err(ModelError::from)?;
            input.tail = Some(std::sync::Arc::new(tail));
        }
        out.push((*w, input, d.tail));
    }
    Ok(out)
}

/// `promptaware`'s selection: the model scores every valid token by its prompt's attention
/// ([`AudioLanguageModel::prompt_scores`]), then top-K. Returns it with the scoring time (ms).
fn prompt_aware(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    keep: f64,
    plan: &Plan,
) -> Result<(Selection, f64)> {
    let t0 = std::time::Instant::now();
    let memory = every_token(clip)?;
    let scores = model
        .prompt_scores(&memory, plan.decoding.prompt.as_deref())?
        .ok_or_else(|| {
            RunMethod::PromptAware
                .unavailable(model.info(), &plan.decoding)
                .unwrap_or(Unavailable::NoPromptScores)
        })?;
    let params = Params {
        keep,
        ..plan.params.clone()
    };
    let mut sel = prune::select(Method::TopK, &scores, None, &params)?;
    // Time order, whatever `--order` says: the scores are not the encoder's.
    sel.kept.sort_unstable();
    Ok((sel, t0.elapsed().as_secs_f64() * 1e3))
}

/// Every valid token as one sequence: a prefix model's unpruned input.
fn every_token(clip: &EncodedClip) -> Result<candle_core::Tensor> {
    let mut full = decoder_inputs(clip, None, Tail::Tokens(0), true, &mut TailRows::default())?;
    Ok(full.remove(0).1.memory)
}

/// `speechprune`'s selection with `prompt` (None: the model's default): the model's similarity
/// and binarized-attention scores of every valid token
/// ([`AudioLanguageModel::speechprune_scores`]), K shared over seconds by the former, the best
/// of each second by the latter ([`prune::speechprune`]). Returns it with the scoring time
/// (ms). `bench-prefill` times it too.
pub fn speechprune_selection(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    keep: f64,
    prompt: Option<&str>,
) -> Result<(Selection, f64)> {
    let t0 = std::time::Instant::now();
    let memory = every_token(clip)?;
    let s = model
        .speechprune_scores(&memory, prompt)?
        .ok_or(Unavailable::SpeechPruneNoPrompt)?;
    let n = clip.n_tokens();
    let k = prune::budget(keep, n);
    let per_second = (1.0 / model.info().seconds_per_token.max(1e-6)).round() as usize;
    let kept = prune::speechprune(&s.similarity, &s.attention, k, per_second);
    let sel = Selection {
        method: Method::TopK,
        k,
        segments: None,
        kept,
        merged: Vec::new(),
    };
    Ok((sel, t0.elapsed().as_secs_f64() * 1e3))
}

/// Where a clip's tokens are: each window's valid tokens (None for prefix models, which read
/// the clip as one sequence) and the seconds per token.
pub(super) struct Layout {
    pub(super) windows: Option<Vec<std::ops::Range<usize>>>,
    pub(super) seconds_per_token: f64,
}

impl Layout {
    fn of(clip: &EncodedClip, prefix: bool, seconds_per_token: f64) -> Layout {
        Layout {
            windows: (!prefix).then(|| {
                clip.windows
                    .iter()
                    .map(|w| w.first_token..w.first_token + w.n_valid)
                    .collect()
            }),
            seconds_per_token,
        }
    }
}

/// Adds a run's window generations (in any order) to its result: times and token counts
/// summed, token ids and texts in window order, texts joined by one space (SPEC.md section 5);
/// attention and words when collected.
pub(super) fn fill_text(res: &mut RunResult, mut gens: Vec<(usize, Generation)>, layout: &Layout) {
    gens.sort_by_key(|(w, _)| *w);
    // Each input's columns: the clip tokens it was given, or those the model kept (FastV).
    let cols: Vec<(usize, Vec<usize>, &Generation)> = gens
        .iter()
        .map(|(w, g)| {
            let range = layout.windows.as_ref().and_then(|ws| ws.get(*w).cloned());
            let given = words::columns(&res.kept, range);
            let cols = match &g.kept {
                Some(kept) => kept.iter().filter_map(|&i| given.get(i).copied()).collect(),
                None => given,
            };
            (*w, cols, g)
        })
        .collect();
    if gens.iter().any(|(_, g)| g.kept.is_some()) {
        let mut kept: Vec<usize> = cols
            .iter()
            .flat_map(|(_, c, _)| c.iter().copied())
            .collect();
        kept.sort_unstable();
        res.k = kept.len();
        res.kept = kept;
    }
    if gens.iter().any(|(_, g)| g.attention.is_some()) {
        let (attention, words) = words::assemble(&cols, layout.seconds_per_token);
        res.attention = Some(attention);
        res.words = Some(words);
    }
    res.text.clear();
    let (mut prefill, mut steps, mut measured) = (0.0, 0, false);
    for (_, g) in gens {
        res.decode_ms += g.decode_ms;
        if let Some(p) = g.prefill_ms {
            prefill += p;
            measured = true;
        }
        steps += g.steps;
        res.generated_tokens += g.token_ids.len();
        res.token_ids.extend_from_slice(&g.token_ids);
        res.looped |= g.loops.looped;
        res.stopped_on_loop |= g.loops.stopped;
        if g.text.is_empty() {
            continue;
        }
        if !res.text.is_empty() {
            res.text.push(' ');
        }
        let at = res.text.len();
        if let Some(span) = &g.loops.span {
            res.loop_spans.push([at + span.start, at + span.end]);
        }
        res.text.push_str(&g.text);
    }
    if res.scoring_ms > 0.0 {
        res.decode_ms += res.scoring_ms;
        prefill += res.scoring_ms;
    }
    if measured {
        res.prefill_ms = Some(prefill);
        res.decode_ms_per_token =
            (steps > 0).then(|| (res.decode_ms - prefill).max(0.0) / steps as f64);
    }
}
