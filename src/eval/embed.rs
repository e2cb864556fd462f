//! MMAU's answer matching with sentence embeddings, as the paper did with Sentence-BERT: the
//! option whose all-MiniLM-L6-v2 vector ([`crate::model::sentence`]) is most similar (cosine)
//! to the answer's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::metrics::accuracy::{LexicalScorer, OptionScorer};
pub use crate::model::sentence::{
    check_dir, default_dir, EmbedError, Result, SentenceEmbedder, ENV_VAR, MODEL_NAME,
};
use crate::util::cosine;

/// MMAU's similarity step with sentence embeddings: cosine similarity of the answer's vector
/// to each option's. Vectors are cached by text, since every setting of a clip has the same
/// options. A text the model cannot embed (it never happened on the fixtures) falls back to
/// bag-of-words scores for that answer, with one stderr line per scorer.
pub struct SentenceScorer {
    embedder: SentenceEmbedder,
    cache: Mutex<HashMap<String, Vec<f32>>>,
    warned: AtomicBool,
}

impl SentenceScorer {
    pub fn new(embedder: SentenceEmbedder) -> Self {
        SentenceScorer {
            embedder,
            cache: Mutex::new(HashMap::new()),
            warned: AtomicBool::new(false),
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self::new(SentenceEmbedder::load(dir)?))
    }

    pub fn embedder(&self) -> &SentenceEmbedder {
        &self.embedder
    }

    /// Cosine similarity of `pred` to each option. Texts not seen before are embedded in one
    /// batch.
    pub fn try_scores(&self, pred: &str, options: &[String]) -> Result<Vec<f64>> {
        let texts: Vec<&str> = std::iter::once(pred)
            .chain(options.iter().map(String::as_str))
            .collect();
        let mut known: HashMap<&str, Vec<f32>> = HashMap::new();
        if let Ok(cache) = self.cache.lock() {
            for t in &texts {
                if let Some(v) = cache.get(*t) {
                    known.insert(t, v.clone());
                }
            }
        }
        let mut todo: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !known.contains_key(t))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        if !todo.is_empty() {
            let vs = self.embedder.embed_batch(&todo)?;
            let mut cache = self.cache.lock().ok();
            for (t, v) in todo.into_iter().zip(vs) {
                if let Some(c) = cache.as_mut() {
                    c.insert(t.to_string(), v.clone());
                }
                known.insert(t, v);
            }
        }
        let empty = Vec::new();
        let p = known.get(pred).unwrap_or(&empty);
        Ok(options
            .iter()
            .map(|o| cosine(p, known.get(o.as_str()).unwrap_or(&empty)))
            .collect())
    }
}

impl OptionScorer for SentenceScorer {
    fn name(&self) -> &str {
        "all-MiniLM-L6-v2 sentence embeddings"
    }

    fn scores(&self, pred: &str, options: &[String]) -> Vec<f64> {
        match self.try_scores(pred, options) {
            Ok(s) => s,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    eprintln!("sentence embedding failed ({e}); bag-of-words similarity used for that answer");
                }
                LexicalScorer.scores(pred, options)
            }
        }
    }
}

/// The best option scorer without asking: the sentence embedder when its model is on disk,
/// else the bag-of-words stand-in, with the reason why for the user (`--scorer auto`, the
/// corpus view).
pub fn auto_scorer() -> (Box<dyn OptionScorer>, Option<String>) {
    let why = match default_dir() {
        None => format!(
            "no {MODEL_NAME} sentence-embedding model (`prunescope fetch minilm` fetches it)"
        ),
        Some(dir) => match SentenceScorer::load(&dir) {
            Ok(s) => return (Box::new(s), None),
            Err(e) => e.to_string(),
        },
    };
    (
        Box::new(LexicalScorer),
        Some(format!(
            "{why}: MMAU answers naming no option are matched by bag-of-words similarity instead"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sentence::testing::{tiny_model, Scratch};

    #[test]
    fn scores_by_cosine_and_falls_back_to_words() {
        let s = Scratch::new("scorer");
        tiny_model(&s, None);
        let scorer = SentenceScorer::load(s.path()).unwrap();
        let s1 = scorer.scores("a b", &["a b".into(), "c".into()]);
        assert!((s1[0] - 1.0).abs() < 1e-6, "{s1:?}");
        // Falls back to bag-of-words instead of failing.
        assert_eq!(scorer.scores("far", &["far".into()]), vec![1.0]);
    }
}
