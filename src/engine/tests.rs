//! Engine unit tests: decoder inputs on a hand-made clip, per-run bookkeeping on the fake model.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::run::{fill_text, Layout};
use super::*;
use crate::model::fake::FakeModel;
use crate::model::repetition::LoopReport;
use crate::model::{EncodedWindow, Generation, ModelInfo, OnFinished};
use crate::prune::Combination;
use crate::scores::{LayerScores, Layers};

const D: usize = 2;

/// Two windows of 6 tokens, `d_model` 2: window 0 has 4 valid tokens (clip tokens 0-3), window
/// 1 has 2 (clip tokens 4-5). Row `i` of window `w` is `[10 w + i, -(10 w + i)]`.
fn clip() -> EncodedClip {
    let window = |w: usize, first_token: usize, n_valid: usize| Window {
        first_token,
        n_valid,
        hidden: (0..6)
            .flat_map(|i| {
                let v = (10 * w + i) as f32;
                [v, -v]
            })
            .collect(),
        tokens: 6,
        samples: 0..0,
    };
    EncodedClip {
        windows: vec![window(0, 0, 4), window(1, 4, 2)],
        layers: vec![LayerScores {
            layer: 0,
            mean: vec![1.0; 6],
            max: vec![1.0; 6],
        }],
        encoder_layers: 1,
        keys: vec![0.0; 6],
        key_dim: 1,
        d_model: D,
        encode_ms: 0.0,
        analyzed_samples: 0,
        samples: Default::default(),
    }
}

fn selection(kept: Vec<usize>, merged: Vec<Combination>) -> Selection {
    Selection {
        method: Method::TopK,
        k: kept.len(),
        segments: None,
        kept,
        merged,
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

fn row(v: f32) -> Vec<f32> {
    vec![v, -v]
}

#[test]
fn decoder_inputs_per_window_with_shared_tails() {
    let clip = clip();
    let mut tails = TailRows::default();
    // Kept in score order across windows: each window gets its own, in selection order.
    let sel = selection(vec![5, 3, 0], vec![]);
    let inputs = decoder_inputs(&clip, Some(&sel), Tail::Tokens(1), false, &mut tails).unwrap();
    let windows: Vec<(usize, usize)> = inputs.iter().map(|(w, _, n)| (*w, *n)).collect();
    assert_eq!(windows, vec![(0, 1), (1, 1)]);
    assert_eq!(rows(&inputs[0].1.memory), vec![row(3.0), row(0.0)]);
    assert_eq!(rows(&inputs[1].1.memory), vec![row(11.0)]);
    // The first padding row of each window.
    let tail0 = inputs[0].1.tail.clone().unwrap();
    let tail1 = inputs[1].1.tail.clone().unwrap();
    assert_eq!(rows(&tail0), vec![row(4.0)]);
    assert_eq!(rows(&tail1), vec![row(12.0)]);

    // Another run with the same tail length shares the very same rows (one Arc per window).
    let again = decoder_inputs(
        &clip,
        Some(&selection(vec![1], vec![])),
        Tail::Tokens(1),
        false,
        &mut tails,
    )
    .unwrap();
    assert_eq!(again.len(), 1, "a window that keeps nothing is not decoded");
    assert!(Arc::ptr_eq(again[0].1.tail.as_ref().unwrap(), &tail0));

    // The tail length follows `Tail`: capped at the padding, the whole padding, or none.
    let tail_rows = |tail: Tail, tails: &mut TailRows| -> Vec<(usize, usize)> {
        decoder_inputs(&clip, Some(&sel), tail, false, tails)
            .unwrap()
            .iter()
            .map(|(_, input, n)| (*n, input.tail.as_ref().map_or(0, |t| t.dims()[0])))
            .collect()
    };
    assert_eq!(tail_rows(Tail::Tokens(3), &mut tails), vec![(2, 2), (3, 3)]);
    assert_eq!(tail_rows(Tail::WindowEnd, &mut tails), vec![(2, 2), (4, 4)]);
    assert_eq!(tail_rows(Tail::Tokens(0), &mut tails), vec![(0, 0), (0, 0)]);
    let whole = decoder_inputs(&clip, Some(&sel), Tail::WindowEnd, false, &mut tails).unwrap();
    assert_eq!(
        rows(whole[1].1.tail.as_ref().unwrap()),
        vec![row(12.0), row(13.0), row(14.0), row(15.0)]
    );

    // Vanilla: every valid row and the whole padding, whatever the tail setting.
    let vanilla = decoder_inputs(&clip, None, Tail::Tokens(0), false, &mut tails).unwrap();
    assert_eq!(vanilla.len(), 2);
    assert_eq!(
        rows(&vanilla[0].1.memory),
        vec![row(0.0), row(1.0), row(2.0), row(3.0)]
    );
    assert_eq!((vanilla[0].2, vanilla[1].2), (2, 4));
    assert_eq!(rows(vanilla[1].1.tail.as_ref().unwrap()).len(), 4);
}

#[test]
fn prefix_models_get_one_input_without_tail() {
    let clip = clip();
    let mut tails = TailRows::default();
    let sel = selection(vec![5, 3, 0], vec![]);
    let inputs = decoder_inputs(&clip, Some(&sel), Tail::WindowEnd, true, &mut tails).unwrap();
    assert_eq!(inputs.len(), 1);
    let (w, input, tail) = &inputs[0];
    assert_eq!((*w, *tail), (0, 0));
    assert!(input.tail.is_none());
    assert_eq!(rows(&input.memory), vec![row(11.0), row(3.0), row(0.0)]);

    let vanilla = decoder_inputs(&clip, None, Tail::WindowEnd, true, &mut tails).unwrap();
    assert_eq!(vanilla.len(), 1);
    assert!(vanilla[0].1.tail.is_none());
    let all: Vec<Vec<f32>> = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0].map(row).into();
    assert_eq!(rows(&vanilla[0].1.memory), all);
}

#[test]
fn merged_tokens_are_the_weighted_sum_of_their_members() {
    let clip = clip();
    let mut tails = TailRows::default();
    // Token 1 absorbs tokens 2 and 5 (of the other window): 0.5 r1 + 0.25 r2 + 0.25 r5.
    let merged = vec![Combination {
        target: 1,
        parts: vec![(1, 0.5), (2, 0.25), (5, 0.25)],
    }];
    let sel = selection(vec![1, 3], merged);
    let inputs = decoder_inputs(&clip, Some(&sel), Tail::Tokens(0), false, &mut tails).unwrap();
    assert_eq!(
        inputs.len(),
        1,
        "the merged token goes to its target's window"
    );
    let want = 0.5 * 1.0 + 0.25 * 2.0 + 0.25 * 11.0;
    assert_eq!(rows(&inputs[0].1.memory), vec![row(want), row(3.0)]);
}

/// The fake model's encoder with scripted generations: window 0 (1500 valid tokens) says
/// "first window", window 1 (500 valid tokens) loops on "la la la"; `on_finished` is called
/// in reverse input order, so runs finish out of order and windows arrive last first.
struct Scripted(FakeModel);

impl Scripted {
    fn generation(input: &DecodeInput) -> Generation {
        let first = input.memory.to_vec2::<f32>().unwrap()[0][1];
        if first == 1500.0 {
            Generation {
                token_ids: vec![1, 2],
                text: "first window".into(),
                decode_ms: 10.0,
                prefill_ms: Some(2.0),
                steps: 4,
                loops: LoopReport::default(),
                ..Generation::default()
            }
        } else {
            Generation {
                token_ids: vec![3, 4, 5],
                text: "la la la".into(),
                decode_ms: 5.5,
                prefill_ms: Some(1.5),
                steps: 3,
                loops: LoopReport {
                    looped: true,
                    span: Some(3..8),
                    stopped: true,
                },
                ..Generation::default()
            }
        }
    }
}

impl AudioLanguageModel for Scripted {
    fn info(&self) -> &ModelInfo {
        self.0.info()
    }

    fn encode(
        &self,
        samples: &[f32],
        layers: crate::scores::Layers,
    ) -> crate::model::Result<EncodedWindow> {
        self.0.encode(samples, layers)
    }

    fn generate(
        &self,
        inputs: &[DecodeInput],
        _cancel: &AtomicBool,
        on_finished: &mut OnFinished<'_>,
    ) -> crate::model::Result<Vec<Generation>> {
        let gens: Vec<Generation> = inputs.iter().map(Scripted::generation).collect();
        for (i, g) in gens.iter().enumerate().rev() {
            on_finished(i, g);
        }
        Ok(gens)
    }
}

/// 40 s of a tone: a full 30 s window (1500 tokens, no padding) and 10 s (500 tokens, 1000 of
/// padding).
fn forty_seconds() -> Audio {
    let samples = (0..40 * 16_000)
        .map(|i| (i as f32 * 0.01).sin() * 0.3)
        .collect();
    Audio::from_samples(samples, 16_000).unwrap()
}

#[test]
fn run_sums_windows_joins_texts_and_reports_each_run_once() {
    let model = Scripted(FakeModel::default());
    let audio = forty_seconds();
    let clip = encode(&model, &audio, Layers::Last, &mut |_| {}).unwrap();
    assert_eq!(
        clip.windows
            .iter()
            .map(|w| (w.first_token, w.n_valid))
            .collect::<Vec<_>>(),
        vec![(0, 1500), (1500, 500)]
    );
    let plan = Plan::grid(
        &[RunMethod::Vanilla, RunMethod::Prune(Method::Full)],
        &[1.0],
        Params::default(),
        Decoding {
            tail: Tail::Tokens(7),
            ..Decoding::default()
        },
    );
    let cancel = AtomicBool::new(false);
    let mut reported: Vec<(usize, RunResult)> = Vec::new();
    let results = run_with(&model, &clip, &plan, &cancel, &mut |_| {}, &mut |r, res| {
        reported.push((r, res.clone()))
    })
    .unwrap();
    assert_eq!(results.len(), 2);

    // Every run is reported once, as soon as its last window is done (last run first here),
    // with exactly the result that is returned.
    assert_eq!(
        reported.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![1, 0]
    );
    for (r, res) in &reported {
        assert_eq!(
            serde_json::to_value(res).unwrap(),
            serde_json::to_value(&results[*r]).unwrap()
        );
    }

    let (vanilla, full) = (&results[0], &results[1]);
    assert_eq!(
        (vanilla.method, full.method),
        (RunMethod::Vanilla, RunMethod::Prune(Method::Full))
    );
    // Vanilla reads the whole padding; `full` the tail: none in window 0, 7 in window 1.
    assert_eq!((vanilla.tail_tokens, full.tail_tokens), (1000, 7));
    assert_eq!((vanilla.k, full.k), (2000, 2000));
    assert_eq!(vanilla.kept, (0..2000).collect::<Vec<_>>());
    for r in &results {
        // Window 0 then window 1, joined by one space; the loop span moves by "first window ".
        assert_eq!(r.text, "first window la la la");
        assert_eq!(r.loop_spans, vec![[16, 21]]);
        assert_eq!(r.token_ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(r.generated_tokens, 5);
        assert_eq!(r.decode_ms, 15.5);
        assert_eq!(r.prefill_ms, Some(3.5));
        assert_eq!(r.decode_ms_per_token, Some(12.0 / 7.0));
        assert!(r.looped && r.stopped_on_loop);
    }
}

#[test]
fn a_run_of_one_window_keeps_its_text_and_spans() {
    let model = Scripted(FakeModel::default());
    let clip = encode(&model, &forty_seconds(), Layers::Last, &mut |_| {}).unwrap();
    // 100 tokens of window 1 only: one input, its text and span as the model gave them.
    let sel = selection((1500..1600).collect(), vec![]);
    let mut tails = TailRows::default();
    let inputs = decoder_inputs(&clip, Some(&sel), Tail::Tokens(0), false, &mut tails).unwrap();
    let gens = inputs
        .iter()
        .map(|(w, input, _)| (*w, Scripted::generation(input)))
        .collect();
    let spec = RunSpec {
        method: RunMethod::Prune(Method::TopK),
        keep: 0.05,
    };
    let mut res = RunResult::before_decoding(&spec, Some(&sel), clip.n_tokens(), 0.0);
    let layout = Layout {
        windows: None,
        seconds_per_token: 0.02,
    };
    fill_text(&mut res, gens, &layout);
    assert_eq!(res.text, "la la la");
    assert_eq!(res.loop_spans, vec![[3, 8]]);
    assert_eq!(res.decode_ms, 5.5);
    assert_eq!(res.decode_ms_per_token, Some(4.0 / 3.0));
}

#[test]
fn a_grid_runs_each_method_at_each_keep_once() {
    let methods = [
        RunMethod::Vanilla,
        RunMethod::Prune(Method::TopK),
        RunMethod::Prune(Method::Atome),
        RunMethod::Prune(Method::TopK),
        RunMethod::FastV,
    ];
    let spec = |method, keep| RunSpec { method, keep };
    let threshold = Params {
        merge_threshold: Some(0.5),
        ..Params::default()
    };
    assert_eq!(
        grid_runs(&methods, &[0.5, 0.25], &threshold),
        [
            spec(RunMethod::Vanilla, 1.0),
            spec(RunMethod::Prune(Method::TopK), 0.5),
            spec(RunMethod::Prune(Method::TopK), 0.25),
            // A threshold sets atome's K: one run.
            spec(RunMethod::Prune(Method::Atome), 1.0),
            spec(RunMethod::FastV, 0.5),
            spec(RunMethod::FastV, 0.25),
        ]
    );
    let plain = grid_runs(&methods[2..3], &[0.5], &Params::default());
    assert_eq!(plain, [spec(RunMethod::Prune(Method::Atome), 0.5)]);
}

#[test]
fn a_result_keeps_its_method_and_selection_and_writes_the_method_by_name() {
    let sel = selection(vec![3, 1], vec![]);
    let spec = RunSpec {
        method: RunMethod::PromptAware,
        keep: 0.5,
    };
    let res = RunResult::before_decoding(&spec, Some(&sel), 4, 0.0);
    assert_eq!(res.method, RunMethod::PromptAware);
    assert_eq!(
        res.selection(),
        Selection {
            method: Method::TopK,
            ..sel
        }
    );
    let json = serde_json::to_string(&res).unwrap();
    assert!(
        json.starts_with(r#"{"method":"promptaware","keep":0.5,"segments":null,"k":2,"kept":[3,1],"tail_tokens":0,"text":"""#),
        "{json}"
    );
    // Vanilla reads every token.
    let vanilla = RunSpec {
        method: RunMethod::Vanilla,
        keep: 0.25,
    };
    let res = RunResult::before_decoding(&vanilla, None, 3, 0.0);
    assert_eq!((res.keep, res.k, &res.kept[..]), (1.0, 3, &[0, 1, 2][..]));
    assert_eq!(res.selection().method, Method::Full);
    assert_eq!(format!("[{:<8}]", res.method), "[vanilla ]");
}
