//! Golden test: the reference implementation's kept lists (tests/data/golden/*.json, computed
//! with Hugging Face transformers) reproduced from the recorded scores.
//!
//! The JSON scores are f64 but every one of them is an f32 value (the reference computed in
//! f32), so converting to f32 loses nothing and creates no new ties; the test checks that.

use std::collections::BTreeSet;

use serde_json::Value;

use super::visionzip::{contextual_count, kept_without_keys};
use super::{budget, rank, select, Method, Params, SegmentMode};

const CLIPS: [&str; 3] = ["jfk.json", "arctic_a0007.json", "jfk_x3.json"];

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn golden_kept_lists_are_reproduced() {
    let mut checked = 0;
    for clip in CLIPS {
        let doc = load(clip);
        let scores64: Vec<f64> = doc["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let scores: Vec<f32> = scores64.iter().map(|&s| s as f32).collect();
        // The reference computed in f32, so the f64 values are f32 values (serde_json's default
        // float parser may be one f64 ulp off, which the cast to f32 absorbs). What matters is
        // that f32 creates no tie and flips no order that the f64 values had.
        let mut by_f64: Vec<usize> = (0..scores64.len()).collect();
        by_f64.sort_by(|&a, &b| scores64[b].total_cmp(&scores64[a]).then(a.cmp(&b)));
        assert_eq!(
            rank(&scores),
            by_f64,
            "{clip}: f32 rounding changed the ranking"
        );
        assert!(scores
            .iter()
            .zip(&scores64)
            .all(|(&a, &b)| (f64::from(a) - b).abs() <= b.abs() * 1e-15));
        assert_eq!(doc["n"].as_u64().unwrap() as usize, scores.len());

        for run in doc["runs"].as_array().unwrap() {
            let name = run["method"].as_str().unwrap();
            if name == "vanilla" {
                continue;
            }
            let method = Method::parse(name).unwrap();
            let keep = run["keep"].as_f64().unwrap();
            let golden = indices(&run["kept"]);
            let params = Params {
                keep,
                segments: 10,
                mode: SegmentMode::Paper,
                ..Params::default()
            };
            let what = format!("{clip} {name} keep {keep}");
            if let Some(k) = run["k"].as_u64() {
                assert_eq!(budget(keep, scores.len()), k as usize, "{what}: K");
            }
            let ours = if method == Method::VisionZip {
                let k = budget(keep, scores.len());
                check_visionzip_groups(&scores, k, &golden, &run["merged"], &what);
                kept_without_keys(&scores, k)
            } else {
                let sel = select(method, &scores, None, &params).unwrap();
                if let Some(s) = run["segments"].as_u64() {
                    assert_eq!(sel.segments, Some(s as usize), "{what}: segments");
                }
                sel.kept
            };
            assert_eq!(ours, golden, "{what}");
            checked += 1;
        }
    }
    if checked > 0 {
        // 3 clips x (full + 3 ratios x 4 methods).
        assert_eq!(checked, 39);
    }
}

/// The golden groups depend on keys we do not have, but their shape does not: the targets
/// are the contextual part of `kept`, and targets plus joiners are exactly the non-dominant
/// tokens, each once.
fn check_visionzip_groups(scores: &[f32], k: usize, kept: &[usize], merged: &Value, what: &str) {
    let d = k - contextual_count(k);
    let merged = merged.as_object().unwrap();
    let targets: BTreeSet<usize> = merged.keys().map(|t| t.parse().unwrap()).collect();
    assert_eq!(
        targets,
        kept[d..].iter().copied().collect(),
        "{what}: targets"
    );
    let mut covered: Vec<usize> = targets.iter().copied().collect();
    for joined in merged.values() {
        covered.extend(indices(joined));
    }
    covered.sort_unstable();
    let dominant: BTreeSet<usize> = kept[..d].iter().copied().collect();
    let remaining: Vec<usize> = (0..scores.len())
        .filter(|t| !dominant.contains(t))
        .collect();
    assert_eq!(covered, remaining, "{what}: groups partition R");
}

/// A clip of a reference file of tests/data/prune (written by scripts/make-*-fixtures.py):
/// its keys and scores as f32 (the file holds their exact values) and its reference cases.
pub(super) struct ReferenceClip {
    pub name: String,
    pub n: usize,
    pub dim: usize,
    pub keys: Vec<f32>,
    pub scores: Vec<f32>,
    pub doc: Value,
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .unwrap_or_default()
}

/// The clips of `tests/data/prune/{file}`.
pub(super) fn reference_clips(file: &str) -> Vec<ReferenceClip> {
    let path = format!("{}/tests/data/prune/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ReferenceClip {
            name: c["name"].as_str().unwrap().to_owned(),
            n: c["n"].as_u64().unwrap() as usize,
            dim: c["dim"].as_u64().unwrap() as usize,
            keys: f32s(&c["keys"]),
            scores: f32s(&c["scores"]),
            doc: c.clone(),
        })
        .collect()
}

/// Each reference case of `file` (its clip, the case): `check` compares one and the test
/// counts them, so an empty file fails.
pub(super) fn for_each_case(file: &str, mut check: impl FnMut(&ReferenceClip, &Value)) {
    let mut checked = 0;
    for clip in reference_clips(file) {
        assert_eq!(clip.keys.len(), clip.n * clip.dim, "{}", clip.name);
        for case in clip.doc["cases"].as_array().unwrap() {
            check(&clip, case);
            checked += 1;
        }
    }
    assert!(checked >= 10, "{file}: {checked} cases");
}
