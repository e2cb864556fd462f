//! Pure logic of the comparison grid: which runs it holds, the cache key of a cell (which
//! parameters its result depends on), what to ask the worker for and in which order, what a
//! cell shows (word diff against `full`, WER against a reference, loop tail), and the kept-token
//! highlight of the attention lane.

use super::insight;
use crate::engine::{Decoding, RunMethod, RunSpec, Tail};
use crate::eval::metrics::wer;
use crate::model::align::TimedWord;
use crate::model::scores::ScoreSource;
use crate::prune::{Method, Order, Params, SegmentMode, Selection};

/// Rows every grid has, in this order.
pub const BASE_METHODS: [RunMethod; 7] = [
    RunMethod::Vanilla,
    RunMethod::Prune(Method::Full),
    RunMethod::Prune(Method::TopK),
    RunMethod::Prune(Method::Segmentwise),
    RunMethod::Prune(Method::VisionZip),
    RunMethod::Prune(Method::Random),
    RunMethod::Prune(Method::BottomK),
];

/// Rows the user can add.
pub const EXTENSIONS: [Method; 4] = [
    Method::Adaptive,
    Method::Window,
    Method::Merge,
    Method::Atome,
];

/// The other papers' rows the user can add: pruning inside the model.
pub const PEERS: [RunMethod; 2] = [RunMethod::FastV, RunMethod::PromptAware];

/// Keep ratios every grid has; the slider's value is added as a fourth column.
pub const FIXED_KEEPS: [f64; 3] = [0.5, 0.25, 0.1];

/// The grid's columns: the fixed ratios, then `current` unless it equals one of them.
pub fn keeps(current: f64) -> Vec<f64> {
    let mut k = FIXED_KEEPS.to_vec();
    if !k.iter().any(|x| (x - current).abs() < 1e-9) {
        k.push(current);
    }
    k
}

/// The grid's rows: the base methods plus the enabled extensions and peers (those `can_run`).
pub fn methods(
    extensions: &[Method],
    peers: &[RunMethod],
    can_run: &dyn Fn(RunMethod) -> bool,
) -> Vec<RunMethod> {
    BASE_METHODS
        .into_iter()
        .chain(
            EXTENSIONS
                .into_iter()
                .filter(|m| extensions.contains(m))
                .map(RunMethod::Prune),
        )
        .chain(
            PEERS
                .into_iter()
                .filter(|m| peers.contains(m) && can_run(*m)),
        )
        .collect()
}

/// The run of `method` at `keep`: keep 1 for a method that ignores the keep ratio.
pub fn spec(method: RunMethod, keep: f64, params: &Params) -> RunSpec {
    let keep = if method.ignores_keep(params) {
        1.0
    } else {
        keep
    };
    RunSpec { method, keep }
}

/// The spec of a cell (`None` for the empty cells of rows that ignore the keep ratio, which
/// show once, in the first column).
pub fn cell(method: RunMethod, keep: f64, column: usize, params: &Params) -> Option<RunSpec> {
    (column == 0 || !method.ignores_keep(params)).then(|| spec(method, keep, params))
}

/// Every cell of the grid, in grid order (rows of `methods(extensions)`, columns of
/// `keeps(current)`).
pub fn specs(methods: &[RunMethod], current: f64, params: &Params) -> Vec<RunSpec> {
    let keeps = keeps(current);
    let mut specs = Vec::new();
    for &m in methods {
        for (c, &k) in keeps.iter().enumerate() {
            specs.extend(cell(m, k, c, params));
        }
    }
    specs
}

/// The parameters a method reads besides the keep ratio (the rest cannot change its output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reads {
    /// Vanilla reads none.
    Nothing,
    Order(Order),
    Segments(Order, usize, SegmentMode),
    /// Adaptive: S, gamma (its bits) and k_min.
    Adaptive(Order, usize, u64, usize),
    Window(Order, usize),
    Seed(Order, u64),
    /// Atome: its threshold's bits, if any.
    Threshold(Order, Option<u64>),
    /// FastV: its layer (prefix models).
    Layer(usize),
}

/// A grid cell's cache key: it changes exactly when the cell's output can (the method, its keep
/// ratio, the parameters that method reads, the silence tail and the loop guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellKey {
    pub method: RunMethod,
    /// Keep ratio in millionths (fixed rows: 1.0).
    keep_ppm: u32,
    reads: Reads,
    /// The score source, for the methods that rank tokens by their scores.
    source: Option<ScoreSource>,
    tail: Tail,
    stop_on_loop: bool,
}

pub fn cell_key(spec: &RunSpec, p: &Params, decoding: &Decoding) -> CellKey {
    let keep = self::spec(spec.method, spec.keep, p).keep;
    let reads = match spec.method {
        RunMethod::Vanilla | RunMethod::PromptAware => Reads::Nothing,
        RunMethod::FastV => Reads::Layer(decoding.fastv_layer),
        RunMethod::Prune(m) => match m {
            Method::Segmentwise | Method::Merge => Reads::Segments(p.order, p.segments, p.mode),
            Method::Adaptive => Reads::Adaptive(p.order, p.segments, p.gamma.to_bits(), p.k_min),
            Method::Window => Reads::Window(p.order, p.window_tokens),
            Method::Random => Reads::Seed(p.order, p.seed),
            Method::Atome => Reads::Threshold(p.order, p.merge_threshold.map(f64::to_bits)),
            Method::Full | Method::TopK | Method::BottomK | Method::VisionZip => {
                Reads::Order(p.order)
            }
        },
    };
    let ranks = match spec.method {
        RunMethod::Vanilla | RunMethod::FastV | RunMethod::PromptAware => false,
        RunMethod::Prune(m) => m.reads_scores(p.order),
    };
    CellKey {
        method: spec.method,
        keep_ppm: (keep * 1e6).round() as u32,
        reads,
        source: ranks.then_some(p.source),
        // Vanilla reads every window whole, padding included: no tail setting applies.
        tail: if spec.method == RunMethod::Vanilla {
            Tail::Tokens(0)
        } else {
            decoding.tail
        },
        stop_on_loop: decoding.stop_on_loop,
    }
}

/// Puts `first` (what the user is looking at) first and `full` (every diff's reference) second;
/// the rest keep their order.
pub fn prioritise(mut runs: Vec<RunSpec>, first: Option<&RunSpec>) -> Vec<RunSpec> {
    let full = RunSpec {
        method: RunMethod::Prune(Method::Full),
        keep: 1.0,
    };
    for want in [Some(&full), first].into_iter().flatten() {
        if let Some(i) = runs.iter().position(|r| r == want) {
            let r = runs.remove(i);
            runs.insert(0, r);
        }
    }
    runs
}

/// The decode request in flight: its job and the cells it fills, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub job: u64,
    pub keys: Vec<CellKey>,
    pub done: usize,
    pub of: usize,
    pub running: bool,
}

/// What the grid asks of the worker this frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Nothing to do: the request in flight (running or not) covers every missing cell.
    Nothing,
    /// Every cell is in and nothing is in flight.
    Drop,
    /// Decode `runs` (cells `keys`), the first `first` of them alone before the rest.
    Decode {
        runs: Vec<RunSpec>,
        keys: Vec<CellKey>,
        first: usize,
    },
}

/// The grid's next request: the cells without a result, the slider's own setting (`current`,
/// decoded alone first so it shows without waiting for the batch) then `full` first. A request
/// in flight that covers every missing cell is left alone; so is a finished one that covered
/// them (it was cancelled or failed: do not ask again until the settings ask for something new).
pub fn next_request(
    mut specs: Vec<RunSpec>,
    current: &RunSpec,
    params: &Params,
    decoding: &Decoding,
    have: impl Fn(&CellKey) -> bool,
    in_flight: Option<&InFlight>,
) -> Ask {
    if !specs.contains(current) {
        specs.push(current.clone());
    }
    let (missing, keys): (Vec<RunSpec>, Vec<CellKey>) = prioritise(specs, Some(current))
        .into_iter()
        .map(|s| {
            let k = cell_key(&s, params, decoding);
            (s, k)
        })
        .filter(|(_, k)| !have(k))
        .unzip();
    if in_flight.is_some_and(|d| keys.iter().all(|k| d.keys.contains(k))) {
        return Ask::Nothing;
    }
    if missing.is_empty() {
        return Ask::Drop;
    }
    let first = usize::from(missing.first() == Some(current));
    Ask::Decode {
        runs: missing,
        keys,
        first,
    }
}

/// What a grid cell shows besides its text, computed once per change of its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct CellView {
    pub text: String,
    pub full: Option<String>,
    pub reference: String,
    /// `None` when there is nothing to compare with (the full row itself, or no full yet).
    pub diff: Option<Vec<Diff>>,
    pub wer: Option<f64>,
    /// Per word of `text`: inside a repeated loop tail (drawn dimmed).
    pub looped: Vec<bool>,
    /// Per word of `text`: which of the run's timed words it is ([`insight::word_links`]).
    pub links: Vec<Option<usize>>,
    /// The timed word the cell's text was last scrolled to.
    pub scrolled_to: Option<usize>,
}

impl CellView {
    pub fn new(
        text: &str,
        loop_spans: &[[usize; 2]],
        full: Option<&str>,
        reference: &str,
        is_full: bool,
    ) -> CellView {
        CellView {
            looped: looped_words(text, loop_spans),
            text: text.to_owned(),
            full: full.map(str::to_owned),
            reference: reference.to_owned(),
            diff: full.filter(|_| !is_full).map(|f| word_diff(f, text)),
            wer: wer::sentence_wer(reference, text),
            links: Vec::new(),
            scrolled_to: None,
        }
    }

    /// Links the text's words to the run's timed words.
    pub fn with_words(mut self, words: Option<&[TimedWord]>) -> CellView {
        self.links = words.map_or_else(Vec::new, |w| insight::word_links(&self.text, w));
        self
    }

    /// Whether this view was computed for these inputs.
    pub fn is_for(&self, text: &str, full: Option<&str>, reference: &str) -> bool {
        self.text == text && self.full.as_deref() == full && self.reference == reference
    }
}

/// What the attention lane marks for a selection over `n` tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Marks {
    /// Kept tokens, members of merged tokens included.
    pub kept: Vec<bool>,
    /// Segment or window boundaries.
    pub bounds: Vec<usize>,
    /// Merged groups of adjacent tokens (`atome`, `merge` runs), first and last token: drawn as
    /// spans.
    pub spans: Vec<(usize, usize)>,
}

pub fn highlight(sel: &Selection, n: usize, window_tokens: usize) -> Marks {
    let mut kept = vec![false; n];
    let members = sel.merged.iter().flat_map(|c| c.parts.iter().map(|p| p.0));
    for t in sel.kept.iter().copied().chain(members) {
        if let Some(m) = kept.get_mut(t) {
            *m = true;
        }
    }
    let bounds = match (sel.method, sel.segments) {
        (Method::Window, Some(_)) => (0..n).step_by(window_tokens.max(1)).collect(),
        (_, Some(s)) if s > 0 => crate::prune::segment_bounds(n, s),
        _ => Vec::new(),
    };
    let spans = sel
        .merged
        .iter()
        .filter_map(|c| {
            let lo = c.parts.iter().map(|p| p.0).min()?;
            let hi = c.parts.iter().map(|p| p.0).max()?;
            (hi - lo + 1 == c.parts.len()).then_some((lo, hi))
        })
        .collect();
    Marks {
        kept,
        bounds,
        spans,
    }
}

/// One word of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    Same(String),
    /// In the output, not in the reference.
    Added(String),
    /// In the reference, missing from the output.
    Removed(String),
}

/// Word-level diff of `text` against `reference` (longest common subsequence of the words as
/// WER compares them, [`wer::basic_word`]; the words shown are as written).
pub fn word_diff(reference: &str, text: &str) -> Vec<Diff> {
    let shown = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
    let (ra, ta) = (shown(reference), shown(text));
    let norm = |w: &String| wer::basic_word(w);
    let (rn, tn): (Vec<String>, Vec<String>) =
        (ra.iter().map(norm).collect(), ta.iter().map(norm).collect());
    let (n, m) = (rn.len(), tn.len());
    // lcs[i][j]: LCS length of rn[i..] and tn[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if rn[i] == tn[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && rn[i] == tn[j] {
            out.push(Diff::Same(ta[j].clone()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Diff::Added(ta[j].clone()));
            j += 1;
        } else {
            out.push(Diff::Removed(ra[i].clone()));
            i += 1;
        }
    }
    out
}

/// For each whitespace-separated word of `text` (as [`word_diff`] shows them), whether it lies
/// in one of the run's repeated-loop byte ranges (`RunResult::loop_spans`): the words the
/// explorer dims.
pub fn looped_words(text: &str, spans: &[[usize; 2]]) -> Vec<bool> {
    let base = text.as_ptr() as usize;
    text.split_whitespace()
        .map(|w| {
            let at = w.as_ptr() as usize - base;
            spans.iter().any(|&[a, b]| a <= at && at < b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_add_the_slider_value_once() {
        assert_eq!(keeps(0.25), vec![0.5, 0.25, 0.1]);
        assert_eq!(keeps(0.3), vec![0.5, 0.25, 0.1, 0.3]);
    }

    #[test]
    fn fixed_rows_have_one_cell() {
        let full = RunMethod::Prune(Method::Full);
        assert_eq!(
            cell(full, 0.25, 0, &Params::default()),
            Some(RunSpec {
                method: full,
                keep: 1.0
            })
        );
        assert_eq!(cell(full, 0.25, 1, &Params::default()), None);
        assert!(cell(RunMethod::Prune(Method::TopK), 0.1, 2, &Params::default()).is_some());
        assert_eq!(methods(&[Method::Merge], &[], &|_| true).len(), 8);
        // A peer shows only where the model can run it.
        let peers = [RunMethod::FastV, RunMethod::PromptAware];
        assert_eq!(methods(&[], &peers, &|_| true).len(), 9);
        let no_prompt = |m: RunMethod| m != RunMethod::PromptAware;
        assert_eq!(
            methods(&[], &peers, &no_prompt).last(),
            Some(&RunMethod::FastV)
        );
    }

    #[test]
    fn cell_key_depends_on_what_the_method_reads() {
        let p = Params::default();
        let seg = RunSpec {
            method: RunMethod::Prune(Method::Segmentwise),
            keep: 0.25,
        };
        let topk = RunSpec {
            method: RunMethod::Prune(Method::TopK),
            keep: 0.25,
        };
        let more_s = Params {
            segments: 20,
            ..p.clone()
        };
        let d = Decoding::default();
        assert_ne!(cell_key(&seg, &p, &d), cell_key(&seg, &more_s, &d));
        assert_eq!(cell_key(&topk, &p, &d), cell_key(&topk, &more_s, &d));
        let no_tail = Decoding {
            tail: Tail::Tokens(0),
            ..d.clone()
        };
        let fifty = Decoding {
            tail: Tail::Tokens(50),
            ..d.clone()
        };
        let guarded = Decoding {
            stop_on_loop: true,
            ..d.clone()
        };
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &no_tail));
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &fifty));
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &p, &guarded));
        let seeded = Params {
            seed: 3,
            ..p.clone()
        };
        assert_eq!(cell_key(&seg, &p, &d), cell_key(&seg, &seeded, &d));
        // The score source matters to the methods that rank by score, and to every method
        // once the kept tokens are put in score order.
        let layer0 = Params {
            source: ScoreSource {
                layer: Some(0),
                ..ScoreSource::default()
            },
            ..p.clone()
        };
        let random = RunSpec {
            method: RunMethod::Prune(Method::Random),
            keep: 0.25,
        };
        assert_ne!(cell_key(&topk, &p, &d), cell_key(&topk, &layer0, &d));
        assert_eq!(cell_key(&random, &p, &d), cell_key(&random, &layer0, &d));
        let by_score = |p: &Params| Params {
            order: Order::Score,
            ..p.clone()
        };
        assert_ne!(
            cell_key(&random, &by_score(&p), &d),
            cell_key(&random, &by_score(&layer0), &d)
        );
    }

    #[test]
    fn looped_words_follow_the_byte_spans() {
        let text = "Front, left, left, left, left.";
        // The repeated copies start at the second "left,".
        let at = text.find("left, left").unwrap() + "left, ".len();
        assert_eq!(
            looped_words(text, &[[at, text.len()]]),
            vec![false, false, true, true, true]
        );
        assert_eq!(looped_words(text, &[]), vec![false; 5]);
        assert!(looped_words("", &[[0, 3]]).is_empty());
    }

    #[test]
    fn prioritise_puts_current_then_full_first() {
        let r = |m, keep| RunSpec {
            method: RunMethod::Prune(m),
            keep,
        };
        let runs = vec![
            r(Method::TopK, 0.5),
            r(Method::Full, 1.0),
            r(Method::Segmentwise, 0.3),
        ];
        let out = prioritise(runs, Some(&r(Method::Segmentwise, 0.3)));
        assert_eq!(
            out,
            vec![
                r(Method::Segmentwise, 0.3),
                r(Method::Full, 1.0),
                r(Method::TopK, 0.5)
            ]
        );
    }

    #[test]
    fn diff_marks_missing_and_extra_words() {
        let d = word_diff("Ask not what your country", "ask what my country!");
        assert_eq!(
            d,
            vec![
                Diff::Same("ask".into()),
                Diff::Removed("not".into()),
                Diff::Same("what".into()),
                Diff::Added("my".into()),
                Diff::Removed("your".into()),
                Diff::Same("country!".into()),
            ]
        );
        assert!(word_diff("", "").is_empty());
    }

    fn fixture() -> (Params, Decoding, RunSpec) {
        let current = RunSpec {
            method: RunMethod::Prune(Method::Segmentwise),
            keep: 0.3,
        };
        (Params::default(), Decoding::default(), current)
    }

    #[test]
    fn next_request_puts_the_slider_cell_first_then_full() {
        let (p, d, current) = fixture();
        let specs = specs(&methods(&[], &[], &|_| true), 0.3, &p);
        // 2 fixed rows + 5 methods x 4 columns.
        assert_eq!(specs.len(), 22);
        let Ask::Decode { runs, keys, first } =
            next_request(specs.clone(), &current, &p, &d, |_| false, None)
        else {
            panic!("expected a request");
        };
        assert_eq!(runs.len(), 22);
        assert_eq!(runs[0], current);
        assert_eq!(runs[1].method, RunMethod::Prune(Method::Full));
        assert_eq!(first, 1);
        assert_eq!(keys[0], cell_key(&current, &p, &d));
        // In flight and covering every missing cell: nothing new.
        let flight = InFlight {
            job: 1,
            keys: keys.clone(),
            done: 0,
            of: 22,
            running: true,
        };
        let ask = next_request(specs.clone(), &current, &p, &d, |_| false, Some(&flight));
        assert_eq!(ask, Ask::Nothing);
        // The current cell is in: the rest is asked without a head start.
        let have_current = |k: &CellKey| *k == keys[0];
        let Ask::Decode { runs, first, .. } =
            next_request(specs.clone(), &current, &p, &d, have_current, None)
        else {
            panic!("expected a request");
        };
        assert_eq!((runs.len(), first), (21, 0));
        // Everything in: nothing to ask; a finished request is forgotten.
        let ask = next_request(specs.clone(), &current, &p, &d, |_| true, Some(&flight));
        assert_eq!(ask, Ask::Nothing);
        assert_eq!(
            next_request(specs, &current, &p, &d, |_| true, None),
            Ask::Drop
        );
    }

    #[test]
    fn a_new_setting_asks_again() {
        let (p, d, current) = fixture();
        let Ask::Decode { keys, .. } = next_request(
            specs(&methods(&[], &[], &|_| true), 0.3, &p),
            &current,
            &p,
            &d,
            |_| false,
            None,
        ) else {
            panic!("expected a request");
        };
        let flight = InFlight {
            job: 1,
            keys,
            done: 0,
            of: 22,
            running: false,
        };
        let more_s = Params {
            segments: 20,
            ..p.clone()
        };
        let ask = next_request(
            specs(&methods(&[], &[], &|_| true), 0.3, &p),
            &current,
            &more_s,
            &d,
            |_| false,
            Some(&flight),
        );
        assert!(matches!(ask, Ask::Decode { .. }), "{ask:?}");
    }

    #[test]
    fn cell_view_diffs_against_full_and_scores_wer() {
        let v = CellView::new(
            "ask what",
            &[],
            Some("ask not what"),
            "Ask not what.",
            false,
        );
        assert_eq!(v.wer, Some(1.0 / 3.0));
        assert_eq!(v.diff.as_ref().map(Vec::len), Some(3));
        assert!(v.is_for("ask what", Some("ask not what"), "Ask not what."));
        assert!(!v.is_for("ask what", None, "Ask not what."));
        let full = CellView::new("ask not what", &[], Some("ask not what"), "", true);
        assert_eq!((full.diff, full.wer), (None, None));
    }

    #[test]
    fn highlight_marks_kept_and_merged_members() {
        let sel = Selection {
            method: Method::Segmentwise,
            k: 2,
            segments: Some(2),
            kept: vec![1, 6],
            merged: vec![crate::prune::Combination {
                target: 6,
                parts: vec![(6, 0.5), (7, 0.5)],
            }],
        };
        let m = highlight(&sel, 8, 3);
        assert_eq!(
            m.kept,
            vec![false, true, false, false, false, false, true, true]
        );
        assert_eq!(m.bounds, vec![0, 4, 8]);
        assert_eq!(m.spans, vec![(6, 7)]);
    }

    #[test]
    fn runs_that_ignore_the_keep_ratio_are_one_cell() {
        let d = Decoding::default();
        let p = Params::default();
        // The slider on `full` at 30 %: the same cell as the grid's full row, asked once.
        let current = spec(RunMethod::Prune(Method::Full), 0.3, &p);
        let Ask::Decode { runs, keys, .. } = next_request(
            specs(&methods(&[], &[], &|_| true), 0.3, &p),
            &current,
            &p,
            &d,
            |_| false,
            None,
        ) else {
            panic!("expected a request");
        };
        assert_eq!(runs.len(), 22);
        assert_eq!(keys.iter().filter(|k| **k == keys[0]).count(), 1);
        // Atome with a threshold: one cell; without, one per column.
        let atome = RunMethod::Prune(Method::Atome);
        let t = Params {
            merge_threshold: Some(0.9),
            ..p.clone()
        };
        let row = |p: &Params| (0..4).filter_map(|c| cell(atome, 0.1, c, p)).count();
        assert_eq!((row(&p), row(&t)), (4, 1));
        assert_eq!(cell(atome, 0.1, 0, &t).map(|s| s.keep), Some(1.0));
    }
}
