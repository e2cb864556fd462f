//! Evaluation metrics, pure (no model, no I/O): pycocoevalcap's CIDEr-D with its PTB
//! tokenisation, jiwer's WER, and question-answering accuracy. Each is checked against the
//! reference implementation on fixtures in `tests/data/eval` (`scripts/make-metric-fixtures.py`).

pub mod accuracy;
pub mod cider;
pub mod ptb;
pub mod wer;

/// pycocoevalcap's corpus CIDEr-D of raw captions: PTB-tokenises predictions and references,
/// then scores. Returns (corpus mean, per-item scores).
pub fn cider_raw(preds: &[String], refs: &[Vec<String>]) -> (f64, Vec<f64>) {
    let p: Vec<String> = preds.iter().map(|s| ptb::tokenize(s)).collect();
    let r: Vec<Vec<String>> = refs
        .iter()
        .map(|rs| rs.iter().map(|s| ptb::tokenize(s)).collect())
        .collect();
    let items: Vec<cider::Item<'_>> = p
        .iter()
        .zip(&r)
        .map(|(pred, refs)| cider::Item { pred, refs })
        .collect();
    let scores = cider::cider_d(&items);
    let mean = if scores.is_empty() {
        f64::NAN
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    (mean, scores)
}
