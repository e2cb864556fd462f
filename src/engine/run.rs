//! Decoding every run of a plan: each run's selection and decoder inputs, every input of every
//! run decoded together (the model batches them), and the results assembled per run as its
//! last window finishes.

use std::sync::atomic::AtomicBool;

use serde::Serialize;

use super::words::{self, RunAttention};
use super::{
    decoder_inputs, select, EncodedClip, Plan, Progress, Result, RunMethod, RunSpec, Tail,
    TailRows, Unavailable,
};
use crate::model::align::TimedWord;
use crate::model::{AudioLanguageModel, DecodeInput, FastV, Generation, ModelError};
use crate::prune::{self, Method, Params, Selection};

/// One run of the `analyze` document.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Written as its name.
    #[serde(serialize_with = "method_name")]
    pub method: RunMethod,
    pub keep: f64,
    pub segments: Option<usize>,
    pub k: usize,
    pub kept: Vec<usize>,
    pub tail_tokens: usize,
    pub text: String,
    pub decode_ms: f64,
    /// Prefill time (ms, part of `decode_ms`): an LLM's prompt pass, Whisper's cross-attention
    /// keys and values (its share in a batch). Summed over windows.
    pub prefill_ms: Option<f64>,
    /// Decoding time after the prefill per step (ms); None when no step followed the prefill.
    pub decode_ms_per_token: Option<f64>,
    pub generated_tokens: usize,
    pub token_ids: Vec<u32>,
    /// Whether any window's decode looped (hit its cap, repeated itself back to back, or
    /// compressed too well: `model::repetition`).
    pub looped: bool,
    /// Byte ranges of `text` that repeat what precedes them (the explorer dims them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loop_spans: Vec<[usize; 2]>,
    /// The `--stop-on-loop` guard cut at least one window's decode.
    pub stopped_on_loop: bool,
    /// With [`Decoding::attention`]: the words of `text` in clip time (`analyze --words`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TimedWord>>,
    /// With [`Decoding::attention`]: the attention from each output token to the audio
    /// (`analyze --attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<RunAttention>,
    /// The selection's merged tokens (their groups place attention on every member).
    #[serde(skip)]
    pub merged: Vec<prune::Combination>,
    /// Time spent choosing the tokens with the model before the decode (`promptaware`'s
    /// scoring pass, ms): part of `prefill_ms` and `decode_ms`.
    #[serde(skip)]
    pub scoring_ms: f64,
}

fn method_name<S: serde::Serializer>(m: &RunMethod, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
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
    let tail = if info.has_tail {
        plan.decoding.tail
    } else {
        Tail::Tokens(0)
    };
    for spec in &plan.runs {
        if let Some(why) = spec
            .method
            .unavailable(info.lm_layers, plan.decoding.fastv_layer)
        {
            return Err(why.into());
        }
    }
    // Every run's selection first (cheap); its decoder inputs are built when its turn comes.
    let n = clip.n_tokens();
    let mut results = Vec::with_capacity(plan.runs.len());
    let mut selections = Vec::with_capacity(plan.runs.len());
    let mut total = 0;
    for spec in &plan.runs {
        let (sel, scoring_ms) = match spec.method {
            RunMethod::PromptAware => {
                let (sel, ms) = prompt_aware(model, clip, spec.keep, plan)?;
                (Some(sel), ms)
            }
            _ => (select(clip, spec, &plan.params)?, 0.0),
        };
        total += input_count(clip, sel.as_ref(), info.prefix_lm);
        results.push(RunResult::before_decoding(
            spec,
            sel.as_ref(),
            n,
            scoring_ms,
        ));
        selections.push(sel);
    }
    let layout = Layout {
        windows: (!info.prefix_lm).then(|| {
            clip.windows
                .iter()
                .map(|w| w.first_token..w.first_token + w.n_valid)
                .collect()
        }),
        seconds_per_token: info.seconds_per_token,
    };
    let mut done = 0;
    // Per run: windows still decoding, and the finished ones' generations.
    let mut pending: Vec<usize> = vec![0; results.len()];
    let mut finished: Vec<Vec<(usize, Generation)>> = vec![Vec::new(); results.len()];
    let mut per_run: Vec<Vec<(usize, Generation)>> = vec![Vec::new(); results.len()];
    // Runs assembled as their last window finished (handed to `on_run`), kept as they are.
    let mut assembled: Vec<Option<RunResult>> = vec![None; results.len()];
    let mut tails = TailRows::default();
    // Inputs built and not decoded yet: (run, window, input, memory rows).
    let mut queue: std::collections::VecDeque<(usize, usize, DecodeInput, usize)> =
        Default::default();
    let mut next_run = 0;
    loop {
        let queued = |q: &std::collections::VecDeque<(usize, usize, DecodeInput, usize)>| {
            q.iter().map(|x| x.3).sum::<usize>()
        };
        while next_run < plan.runs.len() && queued(&queue) < CHUNK_ROWS {
            let r = next_run;
            next_run += 1;
            let spec = &plan.runs[r];
            let inputs = decoder_inputs(
                clip,
                selections[r].as_ref(),
                tail,
                info.prefix_lm,
                &mut tails,
            )?;
            let mut fastv_k = 0;
            for (w, mut input, tail_w) in inputs {
                input.prompt = plan.decoding.prompt.clone();
                input.stop_on_loop = plan.decoding.stop_on_loop;
                input.attention = plan.decoding.attention;
                let rows = input.memory.dim(0).map_err(ModelError::from)?;
                if spec.method == RunMethod::FastV {
                    let keep = prune::budget(spec.keep, rows);
                    fastv_k += keep;
                    input.fastv = Some(FastV {
                        keep,
                        layer: plan.decoding.fastv_layer,
                    });
                }
                results[r].tail_tokens += tail_w;
                pending[r] += 1;
                // A window's silence context is shared by its runs (one copy of its keys and
                // values): only the own rows count.
                queue.push_back((r, w, input, rows));
            }
            if spec.method == RunMethod::FastV {
                results[r].k = fastv_k;
            }
        }
        if queue.is_empty() {
            break;
        }
        // The next chunk: inputs from the front up to the row budget (at least one).
        let mut chunk = Vec::new();
        let mut rows = 0;
        while let Some(front) = queue.front() {
            if !chunk.is_empty() && rows + front.3 > CHUNK_ROWS {
                break;
            }
            rows += front.3;
            chunk.extend(queue.pop_front());
        }
        let owners: Vec<(usize, usize)> = chunk.iter().map(|(r, w, _, _)| (*r, *w)).collect();
        let inputs: Vec<DecodeInput> = chunk.into_iter().map(|(_, _, i, _)| i).collect();
        let generations = model.generate(&inputs, cancel, &mut |i, g| {
            done += 1;
            progress(Progress::Decoded { done, of: total });
            let Some(&(r, w)) = owners.get(i) else {
                return;
            };
            finished[r].push((w, g.clone()));
            pending[r] -= 1;
            // Its last window, unless more of its windows wait in the queue.
            if pending[r] == 0 && r < next_run {
                let mut res = results[r].clone();
                fill_text(&mut res, std::mem::take(&mut finished[r]), &layout);
                on_run(r, &res);
                assembled[r] = Some(res);
            }
        })?;
        for ((r, w), g) in owners.into_iter().zip(generations) {
            if assembled[r].is_none() {
                per_run[r].push((w, g));
            }
        }
    }
    for ((res, gens), done) in results.iter_mut().zip(per_run).zip(assembled) {
        match done {
            Some(d) => *res = d,
            None => fill_text(res, gens, &layout),
        }
    }
    Ok(results)
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

/// `promptaware`'s selection: the model scores every valid token by its prompt's attention
/// ([`AudioLanguageModel::prompt_scores`]), then top-K. Returns it with the scoring time (ms).
fn prompt_aware(
    model: &dyn AudioLanguageModel,
    clip: &EncodedClip,
    keep: f64,
    plan: &Plan,
) -> Result<(Selection, f64)> {
    let t0 = std::time::Instant::now();
    // Every valid token, as a prefix model's unpruned input.
    let mut full = decoder_inputs(clip, None, Tail::Tokens(0), true, &mut TailRows::default())?;
    let memory = full.remove(0).1.memory;
    let scores = model
        .prompt_scores(&memory, plan.decoding.prompt.as_deref())?
        .ok_or_else(|| {
            RunMethod::PromptAware
                .unavailable(model.info().lm_layers, 0)
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

/// Where a clip's tokens are: each window's valid tokens (None for prefix models, which read
/// the clip as one sequence) and the seconds per token.
pub(super) struct Layout {
    pub(super) windows: Option<Vec<std::ops::Range<usize>>>,
    pub(super) seconds_per_token: f64,
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
        let (attention, words) = words::assemble(&cols, &res.merged, layout.seconds_per_token);
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
