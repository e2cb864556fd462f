//! Token selection rules (SPEC.md sections 3-4). Pure: no candle, no egui, no I/O.
//!
//! Everything here maps a clip's per-token scores (and, for the similarity methods, the encoder
//! keys) to the tokens the decoder will see. The rules are written so that two independent
//! implementations agree bit for bit on the kept sets:
//!
//! - ranking is a total order (score descending, lower index first, NaN as -infinity), see
//!   [`rank`];
//! - budgets use `f64::round` (half away from zero), see [`budget`];
//! - the random method uses its own generator (SplitMix64) so a seed means the same set forever.
//!
//! Submodules, one per family of rules:
//! - `rank`: the ordering every method shares;
//! - `segment`: segment bounds, segmentwise (paper/exact), adaptive and window budgets;
//! - `visionzip`, `merge`, `atome`, `ltbm` and `samp`: the methods that also combine hidden
//!   states; `dart`, which drops the duplicates of a few pivots;
//! - `similarity`: key normalisation and nearest-target assignment they share;
//! - `random`: the seeded uniform draw.

mod atome;
mod dart;
mod ltbm;
mod merge;
mod random;
mod rank;
mod samp;
mod segment;
mod similarity;
mod speechprune;
mod visionzip;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod proptests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use dart::DEFAULT_PIVOTS;
pub use ltbm::DEFAULT_WINDOW as DEFAULT_MERGE_WINDOW;
pub use rank::rank;
pub use samp::DEFAULT_THRESHOLD as DEFAULT_SAMP_THRESHOLD;
pub use segment::segment_bounds;
pub use speechprune::speechprune;

/// A token selection rule (SPEC.md section 3 table, plus section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every token.
    Full,
    /// The K best tokens.
    TopK,
    /// The K worst tokens.
    BottomK,
    /// K tokens drawn uniformly without replacement (seeded).
    Random,
    /// The best tokens of each of S equal segments.
    Segmentwise,
    /// Dominant tokens plus contextual tokens merged by key similarity.
    VisionZip,
    /// Segmentwise with budgets proportional to segment importance.
    Adaptive,
    /// Segmentwise over fixed-length windows, cumulative rounding.
    Window,
    /// Segmentwise anchors that absorb the rest of their segment.
    Merge,
    /// Adjacent token merging (A-ToMe): the most similar neighbours merge until K remain.
    Atome,
    /// Local temporal bipartite merging (LTBM): ToMe's bipartite matching within a few
    /// neighbours, round after round until K remain.
    Ltbm,
    /// DART: a few pivots by key norm, and the tokens least like them.
    Dart,
    /// Samp: adjacent similar tokens merged by attention weight, then a diversity-aware
    /// (DPP) choice of the groups.
    Samp,
}

impl Method {
    /// Every method, in the order of the SPEC tables.
    pub const ALL: [Method; 13] = [
        Method::Full,
        Method::TopK,
        Method::BottomK,
        Method::Random,
        Method::Segmentwise,
        Method::VisionZip,
        Method::Adaptive,
        Method::Window,
        Method::Merge,
        Method::Atome,
        Method::Ltbm,
        Method::Dart,
        Method::Samp,
    ];

    /// The name used on the command line and in the JSON document (same as the serde name).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::TopK => "topk",
            Method::BottomK => "bottomk",
            Method::Random => "random",
            Method::Segmentwise => "segmentwise",
            Method::VisionZip => "visionzip",
            Method::Adaptive => "adaptive",
            Method::Window => "window",
            Method::Merge => "merge",
            Method::Atome => "atome",
            Method::Ltbm => "ltbm",
            Method::Dart => "dart",
            Method::Samp => "samp",
        }
    }

    /// Parses a method name; ASCII case and surrounding whitespace are ignored so that
    /// `--method TopK, segmentwise` works.
    pub fn parse(s: &str) -> Result<Method, PruneError> {
        let wanted = s.trim();
        Method::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| PruneError::UnknownMethod(s.to_owned()))
    }

    /// Whether [`select`] needs [`Keys`] for this method.
    pub fn needs_keys(&self) -> bool {
        matches!(
            self,
            Method::VisionZip
                | Method::Merge
                | Method::Atome
                | Method::Ltbm
                | Method::Dart
                | Method::Samp
        )
    }

    /// Whether the selection depends on the scores when the kept tokens are put in `order`:
    /// `full`, `random`, `atome`, `ltbm` and `dart` choose without them, but score order sorts
    /// by them.
    pub fn reads_scores(&self, order: Order) -> bool {
        order == Order::Score
            || !matches!(
                self,
                Method::Full | Method::Random | Method::Atome | Method::Ltbm | Method::Dart
            )
    }

    /// Whether the result depends on [`Params::segments`]. `window` reports a number of
    /// segments too, but it derives it from [`Params::window_tokens`], so it is not included.
    pub fn uses_segments(&self) -> bool {
        matches!(self, Method::Segmentwise | Method::Adaptive | Method::Merge)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = PruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s)
    }
}

/// How segmentwise (and merge anchors) handle `K mod S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentMode {
    /// The paper's rule: `floor(K / S)` per segment, the leftover is dropped (total may be < K).
    #[default]
    Paper,
    /// The leftover goes, one token each, to the segments whose next-best token scores highest.
    Exact,
}

impl SegmentMode {
    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            SegmentMode::Paper => "paper",
            SegmentMode::Exact => "exact",
        }
    }
}

impl fmt::Display for SegmentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SegmentMode {
    type Err = PruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [SegmentMode::Paper, SegmentMode::Exact]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PruneError::UnknownSegmentMode(s.to_owned()))
    }
}

/// Order of the kept tokens in the output sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Ascending token index (the default; what the audio was).
    #[default]
    Time,
    /// Descending score, lower index first on ties (how the paper built its Top-K sequences).
    Score,
}

impl Order {
    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Order::Time => "time",
            Order::Score => "score",
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Order {
    type Err = PruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Order::Time, Order::Score]
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PruneError::UnknownOrder(s.to_owned()))
    }
}

/// Parameters of every method; each method reads only the fields it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Keep ratio rho in (0, 1].
    pub keep: f64,
    /// Number of segments S (segmentwise, adaptive, merge).
    pub segments: usize,
    /// Leftover handling of segmentwise and of merge anchors.
    pub mode: SegmentMode,
    /// Seed of the random method.
    pub seed: u64,
    /// Adaptive: exponent on segment importance (0 = exact segmentwise, large = topk-like).
    pub gamma: f64,
    /// Adaptive: tokens reserved per segment before the proportional share.
    pub k_min: usize,
    /// Window method: window length W in tokens (callers convert 3 s with their token rate).
    pub window_tokens: usize,
    /// Output order of the kept tokens.
    pub order: Order,
    /// Atome: merge while two adjacent groups are more similar than this (cosine in [-1, 1]),
    /// so K follows the audio; None merges down to the keep ratio's K.
    pub merge_threshold: Option<f64>,
    /// LTBM: how many of its nearest groups of the other set, on each side, a group may merge
    /// into (1: only its neighbours).
    pub merge_window: usize,
    /// DART: the number of pivot tokens.
    pub pivots: usize,
    /// Samp: a token joins the group before it when its mean key cosine to the group's members
    /// is at least this.
    pub samp_threshold: f64,
    /// Tokens of the model's 30 s window (Samp selects within each; callers set it with their
    /// token rate, as the window method's length).
    pub model_window_tokens: usize,
    /// Which encoder layer's scores, reduced over heads how, every method ranks tokens by (the
    /// engine picks them; the rules here see only the scores).
    pub source: crate::scores::ScoreSource,
}

impl Params {
    /// The window method's length in tokens for a length in seconds at the model's token rate
    /// (at least one token): how the command line and the explorer turn `--window-seconds`.
    pub fn window_tokens_for(seconds: f64, seconds_per_token: f64) -> usize {
        ((seconds / seconds_per_token.max(1e-6)).round() as usize).max(1)
    }

    /// [`Params::model_window_tokens`] at the model's token rate: 30 s of its tokens.
    pub fn model_window_tokens_for(seconds_per_token: f64) -> usize {
        Params::window_tokens_for(30.0, seconds_per_token)
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            keep: 1.0,
            segments: 10,
            mode: SegmentMode::Paper,
            seed: 0,
            gamma: 1.0,
            k_min: 1,
            // 3 s of Whisper tokens (20 ms each).
            window_tokens: 150,
            order: Order::Time,
            merge_threshold: None,
            merge_window: DEFAULT_MERGE_WINDOW,
            pivots: DEFAULT_PIVOTS,
            samp_threshold: DEFAULT_SAMP_THRESHOLD,
            // 30 s of Whisper tokens.
            model_window_tokens: 1500,
            source: Default::default(),
        }
    }
}

impl Params {
    /// Checks the ranges every method relies on. [`select`] calls it first.
    pub fn validate(&self) -> Result<(), PruneError> {
        // Written as a negated range check so that NaN fails it.
        if !(self.keep.is_finite() && self.keep > 0.0 && self.keep <= 1.0) {
            return Err(PruneError::InvalidKeep(self.keep));
        }
        if self.segments == 0 {
            return Err(PruneError::ZeroSegments);
        }
        if self.window_tokens == 0 {
            return Err(PruneError::ZeroWindow);
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(PruneError::InvalidGamma(self.gamma));
        }
        if let Some(t) = self.merge_threshold {
            if !(-1.0..=1.0).contains(&t) {
                return Err(PruneError::InvalidThreshold(t));
            }
        }
        if !(-1.0..=1.0).contains(&self.samp_threshold) {
            return Err(PruneError::InvalidSampThreshold(self.samp_threshold));
        }
        if self.merge_window == 0 {
            return Err(PruneError::ZeroMergeWindow);
        }
        if self.pivots == 0 {
            return Err(PruneError::ZeroPivots);
        }
        if self.model_window_tokens == 0 {
            return Err(PruneError::ZeroWindow);
        }
        Ok(())
    }
}

/// The budget `K = clamp(round(rho * N), 1, N)` with `f64::round` (half away from zero);
/// `n == 0` gives 0. A non-finite or out-of-range `keep` never panics: NaN and negative ratios
/// clamp to 1 token, ratios above 1 to N ([`Params::validate`] rejects them before `select`).
pub fn budget(keep: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // `as usize` saturates (NaN -> 0), so the clamp alone makes this total.
    ((keep * n as f64).round() as usize).clamp(1, n)
}

/// Keys for the similarity methods: `n` rows of `dim` values, row-major, one row per token
/// (last encoder layer, averaged over heads). They need not be normalised: the module
/// L2-normalises each row itself.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

/// One output token that is a linear combination of encoder hidden states:
/// `sum(weight * hidden[index] for (index, weight) in parts)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// The kept token whose slot this combination fills (and whose window it belongs to).
    pub target: usize,
    /// `(token index, weight)`; the target itself comes first, the joined tokens follow in
    /// ascending index order.
    pub parts: Vec<(usize, f32)>,
}

impl Combination {
    /// The equal-weight mean of `members` (ascending), kept as the first of them: a merged
    /// group of atome or ltbm.
    pub(crate) fn mean(members: &[usize]) -> Combination {
        let w = 1.0 / members.len() as f32;
        Combination {
            target: members[0],
            parts: members.iter().map(|&j| (j, w)).collect(),
        }
    }
}

/// The result of [`select`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub method: Method,
    /// The budget K (also for paper-mode segmentwise and merge, which may keep fewer); N for
    /// `full`; 0 for an empty clip.
    pub k: usize,
    /// The effective number of segments: `S_eff = min(S, K, N)` for segmentwise, adaptive and
    /// merge, the number of windows for `window` (0 for an empty clip); `None` for methods
    /// without segments.
    pub segments: Option<usize>,
    /// Output tokens in output order. For visionzip: dominant tokens (time order, or score
    /// order with [`Order::Score`]) then the contextual targets in target order; for merge:
    /// the anchors.
    pub kept: Vec<usize>,
    /// Only the kept tokens that absorbed others (visionzip contextual tokens, merge anchors),
    /// in ascending `target` order; every other kept token is its own hidden state.
    pub merged: Vec<Combination>,
}

/// Why a selection could not be made. Messages read as one line for users.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PruneError {
    #[error("keep ratio must be in (0, 1], got {0}")]
    InvalidKeep(f64),
    #[error("segments S must be at least 1")]
    ZeroSegments,
    #[error("window length must be at least 1 token")]
    ZeroWindow,
    #[error("gamma must be finite and at least 0, got {0}")]
    InvalidGamma(f64),
    #[error("the merge threshold is a cosine similarity in [-1, 1], got {0}")]
    InvalidThreshold(f64),
    #[error("Samp's threshold is a cosine similarity in [-1, 1], got {0}")]
    InvalidSampThreshold(f64),
    #[error("LTBM's merge window must be at least 1 neighbour")]
    ZeroMergeWindow,
    #[error("DART needs at least 1 pivot")]
    ZeroPivots,
    #[error("method `{0}` needs the encoder keys, but none were given")]
    MissingKeys(Method),
    #[error("key dimension must be at least 1")]
    ZeroKeyDim,
    #[error("keys have {len} values, expected {n} tokens x dimension {dim}")]
    KeyShape { len: usize, n: usize, dim: usize },
    #[error("unknown method `{0}` (expected one of: {names})", names = method_names())]
    UnknownMethod(String),
    #[error("unknown segment mode `{0}` (expected one of: paper, exact)")]
    UnknownSegmentMode(String),
    #[error("unknown token order `{0}` (expected one of: time, score)")]
    UnknownOrder(String),
}

fn method_names() -> String {
    Method::ALL.map(|m| m.name()).join(", ")
}

/// Selects the tokens of a clip.
///
/// `scores` are the clip's per-token scores (any finite or non-finite values: NaN ranks as
/// -infinity). `keys` are required by [`Method::needs_keys`] methods, with `dim >= 1` and
/// `scores.len() * dim` values (checked even for an empty clip, a mismatch being a caller
/// bug); other methods ignore them. An empty clip gives an empty selection with `k = 0`.
///
/// Never panics.
pub fn select(
    method: Method,
    scores: &[f32],
    keys: Option<Keys>,
    params: &Params,
) -> Result<Selection, PruneError> {
    params.validate()?;
    let n = scores.len();
    let missing_keys = PruneError::MissingKeys(method);
    // Only the similarity methods look at the keys; the others ignore them, even malformed
    // (a caller may pass whatever its model gave, including no keys at all as dimension 0).
    if method.needs_keys() {
        check_keys(&keys.ok_or(missing_keys.clone())?, n)?;
    }
    if n == 0 {
        // S_eff = min(S, K, N) = 0, and the window count ceil(0 / W) = 0.
        let segments = (method.uses_segments() || method == Method::Window).then_some(0);
        return Ok(Selection {
            method,
            k: 0,
            segments,
            kept: Vec::new(),
            merged: Vec::new(),
        });
    }

    let k = budget(params.keep, n);
    let order = params.order;
    let plain = |kept: Vec<usize>, segments: Option<usize>| Selection {
        method,
        k,
        segments,
        kept: rank::in_order(kept, scores, order),
        merged: Vec::new(),
    };
    let selection = match method {
        Method::Full => Selection {
            k: n,
            ..plain((0..n).collect(), None)
        },
        Method::TopK => plain(rank::top(scores, k), None),
        Method::BottomK => plain(rank::bottom(scores, k), None),
        Method::Random => plain(random::draw(n, k, params.seed), None),
        Method::Segmentwise => {
            let (kept, s_eff) = segment::segmentwise(scores, k, params.segments, params.mode);
            plain(kept, Some(s_eff))
        }
        Method::Adaptive => {
            let (kept, s_eff) =
                segment::adaptive(scores, k, params.segments, params.gamma, params.k_min);
            plain(kept, Some(s_eff))
        }
        Method::Window => {
            let (kept, windows) = segment::window(scores, params.keep, k, params.window_tokens);
            plain(kept, Some(windows))
        }
        Method::VisionZip => {
            let keys = keys.ok_or(missing_keys)?;
            // Its output order (dominant, then targets) is not a plain sort, so it orders
            // its own output.
            let (kept, merged) = visionzip::visionzip(scores, keys, k, order);
            Selection {
                method,
                k,
                segments: None,
                kept,
                merged,
            }
        }
        Method::Atome => {
            let keys = keys.ok_or(missing_keys)?;
            let (kept, merged) = atome::atome(keys, n, k, params.merge_threshold);
            Selection {
                // With a threshold, K is what the audio gave.
                k: kept.len(),
                merged,
                ..plain(kept, None)
            }
        }
        Method::Ltbm => {
            let keys = keys.ok_or(missing_keys)?;
            let (kept, merged) = ltbm::ltbm(keys, n, k, params.merge_window);
            Selection {
                merged,
                ..plain(kept, None)
            }
        }
        Method::Dart => {
            let keys = keys.ok_or(missing_keys)?;
            plain(dart::dart(keys, n, k, params.pivots), None)
        }
        Method::Samp => {
            let keys = keys.ok_or(missing_keys)?;
            let (kept, merged) = samp::samp(
                scores,
                keys,
                k,
                params.keep,
                params.samp_threshold,
                params.model_window_tokens,
            );
            Selection {
                merged,
                ..plain(kept, None)
            }
        }
        Method::Merge => {
            let keys = keys.ok_or(missing_keys)?;
            let out = merge::merge(scores, keys, k, params.segments, params.mode);
            Selection {
                merged: out.merged,
                ..plain(out.anchors, Some(out.segments))
            }
        }
    };
    Ok(selection)
}

fn check_keys(keys: &Keys, n: usize) -> Result<(), PruneError> {
    if keys.dim == 0 {
        return Err(PruneError::ZeroKeyDim);
    }
    let shape_error = PruneError::KeyShape {
        len: keys.data.len(),
        n,
        dim: keys.dim,
    };
    match n.checked_mul(keys.dim) {
        Some(expected) if expected == keys.data.len() => Ok(()),
        _ => Err(shape_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(keep: f64) -> Params {
        Params {
            keep,
            ..Params::default()
        }
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()), Ok(m));
            assert_eq!(m.name().parse::<Method>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
        }
        assert_eq!(Method::parse(" TopK "), Ok(Method::TopK));
        assert_eq!("EXACT".parse::<SegmentMode>(), Ok(SegmentMode::Exact));
        assert_eq!("score".parse::<Order>(), Ok(Order::Score));
        assert!("sideways".parse::<Order>().is_err());
        assert!("fuzzy".parse::<SegmentMode>().is_err());
    }

    #[test]
    fn unknown_method_lists_the_names() {
        let err = Method::parse("foo").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown method `foo` (expected one of: full, topk, bottomk, random, segmentwise, \
             visionzip, adaptive, window, merge, atome, ltbm, dart, samp)"
        );
        // `vanilla` is the engine's business (the unpruned model), not a selection rule.
        assert!(Method::parse("vanilla").is_err());
    }

    #[test]
    fn method_flags() {
        let keyed: Vec<_> = Method::ALL.into_iter().filter(Method::needs_keys).collect();
        assert_eq!(
            keyed,
            [
                Method::VisionZip,
                Method::Merge,
                Method::Atome,
                Method::Ltbm,
                Method::Dart,
                Method::Samp
            ]
        );
        let segmented: Vec<_> = Method::ALL
            .into_iter()
            .filter(Method::uses_segments)
            .collect();
        assert_eq!(
            segmented,
            [Method::Segmentwise, Method::Adaptive, Method::Merge]
        );
    }

    #[test]
    fn error_messages_read_as_one_line() {
        assert_eq!(
            params(0.0).validate().unwrap_err().to_string(),
            "keep ratio must be in (0, 1], got 0"
        );
        assert_eq!(
            PruneError::ZeroSegments.to_string(),
            "segments S must be at least 1"
        );
        assert_eq!(
            PruneError::MissingKeys(Method::Merge).to_string(),
            "method `merge` needs the encoder keys, but none were given"
        );
        assert_eq!(
            PruneError::KeyShape {
                len: 5,
                n: 3,
                dim: 2
            }
            .to_string(),
            "keys have 5 values, expected 3 tokens x dimension 2"
        );
    }

    #[test]
    fn validate_rejects_out_of_range_params() {
        for keep in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(
                matches!(params(keep).validate(), Err(PruneError::InvalidKeep(_))),
                "keep {keep}"
            );
        }
        for keep in [1e-9, 0.5, 1.0] {
            assert_eq!(params(keep).validate(), Ok(()));
        }
        let p = Params {
            segments: 0,
            ..params(0.5)
        };
        assert_eq!(p.validate(), Err(PruneError::ZeroSegments));
        let p = Params {
            window_tokens: 0,
            ..params(0.5)
        };
        assert_eq!(p.validate(), Err(PruneError::ZeroWindow));
        for gamma in [-1.0, f64::NAN, f64::INFINITY] {
            let p = Params {
                gamma,
                ..params(0.5)
            };
            assert!(matches!(p.validate(), Err(PruneError::InvalidGamma(_))));
        }
        let p = Params {
            gamma: 0.0,
            ..params(0.5)
        };
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn select_rejects_invalid_params_for_every_method_even_when_empty() {
        for m in Method::ALL {
            let keys = Keys { data: &[], dim: 1 };
            assert!(select(m, &[], Some(keys), &params(0.0)).is_err());
            assert!(select(m, &[1.0, 2.0], None, &params(1.5)).is_err());
        }
    }

    #[test]
    fn budget_rounds_half_away_from_zero_and_clamps() {
        assert_eq!(budget(0.5, 0), 0);
        assert_eq!(budget(0.5, 1), 1);
        assert_eq!(budget(0.5, 5), 3); // 2.5 -> 3
        assert_eq!(budget(0.25, 10), 3); // 2.5 -> 3
        assert_eq!(budget(0.1, 550), 55);
        assert_eq!(budget(0.25, 550), 138); // 137.5 -> 138
        assert_eq!(budget(1e-6, 100), 1);
        assert_eq!(budget(1.0, 7), 7);
        assert_eq!(budget(f64::NAN, 7), 1);
        assert_eq!(budget(3.0, 7), 7);
    }

    #[test]
    fn empty_scores_give_empty_selection() {
        for m in Method::ALL {
            let keys = Keys { data: &[], dim: 4 };
            let sel = select(m, &[], Some(keys), &params(0.5)).unwrap();
            assert_eq!(sel.k, 0);
            assert!(sel.kept.is_empty() && sel.merged.is_empty(), "{m}");
            assert_eq!(sel.method, m);
        }
    }

    #[test]
    fn missing_and_malformed_keys_are_errors() {
        let scores = [1.0, 2.0, 3.0];
        for m in [Method::VisionZip, Method::Merge] {
            assert_eq!(
                select(m, &scores, None, &params(0.5)),
                Err(PruneError::MissingKeys(m))
            );
        }
        let short = Keys {
            data: &[0.0; 5],
            dim: 2,
        };
        let zero_dim = Keys { data: &[], dim: 0 };
        for m in Method::ALL {
            if m.needs_keys() {
                assert!(matches!(
                    select(m, &scores, Some(short), &params(0.5)),
                    Err(PruneError::KeyShape {
                        len: 5,
                        n: 3,
                        dim: 2
                    })
                ));
                assert_eq!(
                    select(m, &scores, Some(zero_dim), &params(0.5)),
                    Err(PruneError::ZeroKeyDim)
                );
                assert!(select(m, &[], Some(short), &params(0.5)).is_err());
            } else {
                // The others ignore keys entirely, even malformed ones.
                for keys in [None, Some(short), Some(zero_dim)] {
                    assert!(select(m, &scores, keys, &params(0.5)).is_ok(), "{m}");
                }
            }
        }
    }

    #[test]
    fn full_keeps_everything_whatever_the_ratio() {
        let sel = select(Method::Full, &[3.0, 1.0, 2.0], None, &params(0.1)).unwrap();
        assert_eq!(sel.kept, [0, 1, 2]);
        assert_eq!(sel.k, 3);
        let p = Params {
            order: Order::Score,
            ..params(0.1)
        };
        let sel = select(Method::Full, &[3.0, 1.0, 2.0], None, &p).unwrap();
        assert_eq!(sel.kept, [0, 2, 1]);
    }

    #[test]
    fn topk_and_bottomk_by_hand() {
        let scores = [0.5, 0.9, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6];
        let sel = select(Method::TopK, &scores, None, &params(0.3)).unwrap();
        assert_eq!((sel.k, sel.kept, sel.segments), (3, vec![1, 3, 7], None));
        let sel = select(Method::BottomK, &scores, None, &params(0.3)).unwrap();
        assert_eq!(sel.kept, [2, 4, 6]);
        let p = Params {
            order: Order::Score,
            ..params(0.4)
        };
        let sel = select(Method::TopK, &scores, None, &p).unwrap();
        assert_eq!(sel.kept, [1, 3, 7, 5]);
        // Bottomk in score order still lists descending scores.
        let sel = select(Method::BottomK, &scores, None, &p).unwrap();
        assert_eq!(sel.kept, [8, 4, 6, 2]);
    }

    #[test]
    fn nan_and_infinite_scores() {
        let scores = [f32::NAN, f32::INFINITY, 1.0, f32::NEG_INFINITY, 2.0];
        let sel = select(Method::TopK, &scores, None, &params(0.6)).unwrap();
        assert_eq!(sel.kept, [1, 2, 4]);
        // NaN ties with -inf, lower index first: NaN (0) is the very worst.
        let sel = select(Method::BottomK, &scores, None, &params(0.2)).unwrap();
        assert_eq!(sel.kept, [0]);
        let sel = select(Method::BottomK, &scores, None, &params(0.4)).unwrap();
        assert_eq!(sel.kept, [0, 3]);
        for m in Method::ALL {
            let data = [f32::NAN; 5];
            let keys = Keys {
                data: &data,
                dim: 1,
            };
            let sel = select(m, &scores, Some(keys), &params(0.6)).unwrap();
            assert!(!sel.kept.is_empty(), "{m}");
        }
    }

    #[test]
    fn single_token_and_tiny_keep() {
        for m in Method::ALL {
            let keys = Keys {
                data: &[1.0],
                dim: 1,
            };
            let sel = select(m, &[0.3], Some(keys), &params(1e-9)).unwrap();
            assert_eq!((sel.k, sel.kept.as_slice()), (1, &[0][..]), "{m}");
            assert!(sel.merged.is_empty());
        }
        let scores = [0.1, 0.5, 0.2, 0.4];
        for m in [
            Method::TopK,
            Method::Segmentwise,
            Method::Adaptive,
            Method::Window,
        ] {
            let sel = select(m, &scores, None, &params(1e-9)).unwrap();
            assert_eq!(sel.kept, [1], "{m}");
        }
    }

    #[test]
    fn keep_one_keeps_every_token_for_every_method() {
        let scores = [0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2, 0.6, 0.5];
        let data: Vec<f32> = (0..scores.len() * 2).map(|i| (i as f32).sin()).collect();
        for m in Method::ALL {
            let keys = Keys {
                data: &data,
                dim: 2,
            };
            let p = Params {
                segments: 4,
                mode: SegmentMode::Exact,
                ..params(1.0)
            };
            let sel = select(m, &scores, Some(keys), &p).unwrap();
            let mut kept = sel.kept.clone();
            kept.sort_unstable();
            assert_eq!(kept, (0..9).collect::<Vec<_>>(), "{m}");
            assert!(sel.merged.is_empty(), "{m}: nothing left to merge");
        }
    }
}
