//! Shared test helpers: the default model (loaded once), test data paths.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prunescope::engine::{self, RunMethod, RunSpec};
use prunescope::model::whisper::Whisper;
use prunescope::prune::Params;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A test clip: tests/data first, then assets/.
pub fn data(name: &str) -> PathBuf {
    let p = root().join("tests/data").join(name);
    if p.exists() {
        p
    } else {
        root().join("assets").join(name)
    }
}

pub fn model_dir() -> PathBuf {
    let dir = root().join("models/whisper-tiny.en");
    assert!(
        dir.join("model.bin").is_file(),
        "the default model is missing: run scripts/fetch-models (scripts/test does it)"
    );
    dir
}

/// The default model, loaded once per test binary.
pub fn model() -> &'static Whisper {
    static MODEL: OnceLock<Whisper> = OnceLock::new();
    MODEL.get_or_init(|| Whisper::load(&model_dir()).expect("default model loads"))
}

/// target -> tokens that joined it, for a merging method's selection of a clip.
pub fn merged_groups(
    model: &Whisper,
    audio: &prunescope::audio::Audio,
    method: &str,
    keep: f64,
) -> BTreeMap<usize, BTreeSet<usize>> {
    let clip = engine::encode(model, audio, &mut |_| {}).unwrap();
    let spec = RunSpec {
        method: RunMethod::parse(method).unwrap(),
        keep,
    };
    let sel = engine::select(&clip, &spec, &Params::default())
        .unwrap()
        .unwrap();
    sel.merged
        .iter()
        .map(|c| {
            let joined: BTreeSet<usize> = c
                .parts
                .iter()
                .map(|&(j, _)| j)
                .filter(|&j| j != c.target)
                .collect();
            (c.target, joined)
        })
        .filter(|(_, j)| !j.is_empty())
        .collect()
}

/// A mismatch message `"... ours \"A\" vs reference \"B\""` where both texts share a long prefix
/// and the reference has already fallen into a repetition loop by the point they part.
pub fn is_late_repetition_flip(msg: &str) -> bool {
    let Some((a, b)) = msg.split_once(" vs reference ") else {
        return false;
    };
    let a = a.split_once("ours ").map(|x| x.1).unwrap_or(a);
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let prefix: String = b.chars().take(common).collect();
    let words: Vec<&str> = prefix.split_whitespace().collect();
    if words.len() < 12 {
        return false;
    }
    // Repetition: the last 12 words of the shared prefix use at most 4 distinct words.
    let tail: BTreeSet<&str> = words[words.len() - 12..].iter().copied().collect();
    tail.len() <= 4
}
