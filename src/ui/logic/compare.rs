//! Pure logic of the comparison grid: which runs it holds (rows of methods, columns of keep
//! ratios), and what to ask the worker for next and in which order. Each cell is named by the
//! engine's [`RunKey`]; a request carries those keys and every result comes back with its own.

use crate::engine::worker::KeyedRun;
use crate::engine::{Decoding, RunKey, RunMethod, RunSpec};
use crate::prune::{Method, Params};

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

/// The other papers' rows the user can add: selections on the encoder's output (LTBM, DART,
/// Samp), by the prompt (prompt-aware, SpeechPrune) and inside the model (FastV, encoderdrop).
pub const PEERS: [RunMethod; 7] = [
    RunMethod::Prune(Method::Ltbm),
    RunMethod::Prune(Method::Dart),
    RunMethod::Prune(Method::Samp),
    RunMethod::FastV,
    RunMethod::PromptAware,
    RunMethod::SpeechPrune,
    RunMethod::EncoderDrop,
];

/// Keep ratios every grid has; the slider's value is added as a fourth column.
pub const FIXED_KEEPS: [f64; 3] = [0.5, 0.25, 0.1];

/// The `full` row's one run: every diff's reference.
pub const FULL: RunSpec = RunSpec {
    method: RunMethod::Prune(Method::Full),
    keep: 1.0,
};

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

/// The run of a cell (`None` for the empty cells of rows that ignore the keep ratio, which
/// show once, in the first column).
pub fn cell(method: RunMethod, keep: f64, column: usize, params: &Params) -> Option<RunSpec> {
    (column == 0 || !method.ignores_keep(params))
        .then(|| RunSpec { method, keep }.normalised(params))
}

/// Every cell of the grid, in grid order (rows of `methods`, columns of `keeps(current)`).
pub fn specs(methods: &[RunMethod], current: f64, params: &Params) -> Vec<RunSpec> {
    crate::engine::grid_runs(methods, &keeps(current), params)
}

/// Puts `first` (what the user is looking at) first and `full` (every diff's reference) second;
/// the rest keep their order.
pub fn prioritise(mut runs: Vec<RunSpec>, first: Option<&RunSpec>) -> Vec<RunSpec> {
    for want in [Some(&FULL), first].into_iter().flatten() {
        if let Some(i) = runs.iter().position(|r| r == want) {
            let r = runs.remove(i);
            runs.insert(0, r);
        }
    }
    runs
}

/// The decode request in flight: its job and the cells it fills.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub job: u64,
    pub keys: Vec<RunKey>,
    pub done: usize,
    pub of: usize,
    pub running: bool,
}

/// What the grid asks of the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Nothing to do: the request in flight (running or not) covers every missing cell.
    Nothing,
    /// Every cell is in and nothing is in flight.
    Drop,
    /// Decode `runs`, the first `first` of them alone before the rest.
    Decode { runs: Vec<KeyedRun>, first: usize },
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
    have: impl Fn(&RunKey) -> bool,
    in_flight: Option<&InFlight>,
) -> Ask {
    if !specs.contains(current) {
        specs.push(current.clone());
    }
    let missing: Vec<KeyedRun> = prioritise(specs, Some(current))
        .into_iter()
        .map(|spec| KeyedRun::new(spec, params, decoding))
        .filter(|r| !have(&r.key))
        .collect();
    if in_flight.is_some_and(|d| missing.iter().all(|r| d.keys.contains(&r.key))) {
        return Ask::Nothing;
    }
    if missing.is_empty() {
        return Ask::Drop;
    }
    let first = usize::from(missing.first().map(|r| &r.spec) == Some(current));
    Ask::Decode {
        runs: missing,
        first,
    }
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
        assert_eq!(cell(full, 0.25, 0, &Params::default()), Some(FULL));
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

    fn fixture() -> (Params, Decoding, RunSpec) {
        let current = RunSpec {
            method: RunMethod::Prune(Method::Segmentwise),
            keep: 0.3,
        };
        (Params::default(), Decoding::default(), current)
    }

    fn asked(ask: Ask) -> (Vec<KeyedRun>, usize) {
        match ask {
            Ask::Decode { runs, first } => (runs, first),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn in_flight(runs: &[KeyedRun], running: bool) -> InFlight {
        InFlight {
            job: 1,
            keys: runs.iter().map(|r| r.key).collect(),
            done: 0,
            of: runs.len(),
            running,
        }
    }

    #[test]
    fn next_request_puts_the_slider_cell_first_then_full() {
        let (p, d, current) = fixture();
        let specs = specs(&methods(&[], &[], &|_| true), 0.3, &p);
        // 2 fixed rows + 5 methods x 4 columns.
        assert_eq!(specs.len(), 22);
        let (runs, first) = asked(next_request(
            specs.clone(),
            &current,
            &p,
            &d,
            |_| false,
            None,
        ));
        assert_eq!(runs.len(), 22);
        assert_eq!(runs[0].spec, current);
        assert_eq!(runs[1].spec, FULL);
        assert_eq!(first, 1);
        assert_eq!(runs[0].key, RunKey::of(&current, &p, &d));
        // In flight and covering every missing cell: nothing new.
        let flight = in_flight(&runs, true);
        let ask = next_request(specs.clone(), &current, &p, &d, |_| false, Some(&flight));
        assert_eq!(ask, Ask::Nothing);
        // The current cell is in: the rest is asked without a head start.
        let have_current = |k: &RunKey| *k == runs[0].key;
        let (rest, first) = asked(next_request(
            specs.clone(),
            &current,
            &p,
            &d,
            have_current,
            None,
        ));
        assert_eq!((rest.len(), first), (21, 0));
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
        let grid = specs(&methods(&[], &[], &|_| true), 0.3, &p);
        let (runs, _) = asked(next_request(
            grid.clone(),
            &current,
            &p,
            &d,
            |_| false,
            None,
        ));
        let flight = in_flight(&runs, false);
        let more_s = Params {
            segments: 20,
            ..p.clone()
        };
        let ask = next_request(grid, &current, &more_s, &d, |_| false, Some(&flight));
        assert!(matches!(ask, Ask::Decode { .. }), "{ask:?}");
    }

    #[test]
    fn runs_that_ignore_the_keep_ratio_are_one_cell() {
        let d = Decoding::default();
        let p = Params::default();
        // The slider on `full` at 30 %: the same cell as the grid's full row, asked once.
        let current = RunSpec {
            method: RunMethod::Prune(Method::Full),
            keep: 0.3,
        }
        .normalised(&p);
        let grid = specs(&methods(&[], &[], &|_| true), 0.3, &p);
        let (runs, _) = asked(next_request(grid, &current, &p, &d, |_| false, None));
        assert_eq!(runs.len(), 22);
        assert_eq!(runs.iter().filter(|r| r.key == runs[0].key).count(), 1);
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
