//! The corpus page's rows: an eval run's clips sorted by one setting's metric, by the
//! difference between the two settings compared, or in dataset order. Clips a key does not
//! score go last, whichever way.

use std::cmp::Ordering;

use crate::eval::by_clip::{ByClip, Table};

/// How the corpus table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Dataset order.
    Clip,
    /// A setting's value (its index in the run's settings).
    Setting(usize),
    /// The difference between the two settings compared.
    Delta,
}

/// Each clip's difference in a comparison, aligned with `table.clips` (None: not in it).
pub fn deltas(table: &Table, compared: Option<&ByClip>) -> Vec<Option<f64>> {
    let delta: std::collections::HashMap<&str, f64> = compared
        .map(|c| c.clips.iter().map(|x| (x.id.as_str(), x.delta)).collect())
        .unwrap_or_default();
    table
        .clips
        .iter()
        .map(|id| delta.get(id.as_str()).copied())
        .collect()
}

/// The rows of `table` (indices into `table.clips`) in the order `by` gives, largest first
/// when `descending`; `deltas`: each clip's difference between the settings compared.
pub fn order(table: &Table, deltas: &[Option<f64>], by: SortBy, descending: bool) -> Vec<usize> {
    let n = table.clips.len();
    let key: Vec<Option<f64>> = match by {
        SortBy::Clip => (0..n).map(|i| Some(i as f64)).collect(),
        SortBy::Setting(j) => (0..n).map(|i| table.value(i, j)).collect(),
        SortBy::Delta => (0..n).map(|i| deltas.get(i).copied().flatten()).collect(),
    };
    let mut rows: Vec<usize> = (0..n).collect();
    rows.sort_by(|&a, &b| match (key[a], key[b]) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            let o = if descending { o.reverse() } else { o };
            o.then(a.cmp(&b))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(&b),
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sort_by_their_key_with_unscored_clips_last() {
        let deltas = [Some(1.0), None, Some(-2.0), Some(3.0)];
        let dummy = crate::eval::by_clip::table(
            &crate::eval::runner::Results {
                header: serde_json::from_value(serde_json::json!({
                    "prunescope_eval": 1, "dataset": "asr", "data": "", "model": "m",
                    "settings": [], "params": "", "tail": "window", "items": 4, "shard": null
                }))
                .unwrap(),
                records: (0..4)
                    .map(|i| {
                        serde_json::from_value(serde_json::json!({
                            "index": i,
                            "item": {"id": format!("c{i}"), "audio": "x.wav", "refs": ["a"]}
                        }))
                        .unwrap()
                    })
                    .collect(),
            },
            &crate::eval::metrics::accuracy::LexicalScorer,
        );
        assert_eq!(order(&dummy, &deltas, SortBy::Delta, true), [3, 0, 2, 1]);
        assert_eq!(order(&dummy, &deltas, SortBy::Delta, false), [2, 0, 3, 1]);
        assert_eq!(order(&dummy, &deltas, SortBy::Clip, false), [0, 1, 2, 3]);
        assert_eq!(order(&dummy, &deltas, SortBy::Clip, true), [3, 2, 1, 0]);
    }
}
