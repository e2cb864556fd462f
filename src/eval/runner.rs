//! Runs a dataset through a model under every pruning setting of a plan: each clip is encoded
//! once and every setting reuses the encoding (one batch per clip), through a model host's
//! [`Session`], so the model may be here or remote (`eval --remote`). Results go to a JSONL file: a header line (what was run), then one line per clip with
//! every setting's output. The file is the checkpoint: a restart skips the clips already in it,
//! a torn last line (a killed process) is dropped, and `--shard i/n` splits a dataset
//! round-robin so several processes write several files that [`merge`] joins.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::datasets::{Dataset, Item};
use crate::engine::worker::ClipSource;
use crate::engine::{self, HostError, Plan, Session};
use crate::scores::Layers;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {msg}")]
    Format {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// A results file written under other settings than the ones asked for.
    #[error("{path} holds results of other settings ({what} differs)")]
    Mismatch { path: PathBuf, what: String },
    #[error("shard must be i/n with 0 <= i < n, got `{0}`")]
    Shard(String),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// The model's host failed in a way no later clip escapes (its link lost).
    #[error(transparent)]
    Host(#[from] HostError),
}

pub type Result<T> = std::result::Result<T, RunnerError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError + '_ {
    move |source| RunnerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which part of a dataset a process runs: items with `index % of == index_of_shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub of: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, of: 1 };

    /// Parses `i/n`.
    pub fn parse(s: &str) -> Result<Shard> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| RunnerError::Shard(s.into()))?;
        let (index, of) = match (i.trim().parse(), n.trim().parse()) {
            (Ok(i), Ok(n)) => (i, n),
            _ => return Err(RunnerError::Shard(s.into())),
        };
        if of == 0 || index >= of {
            return Err(RunnerError::Shard(s.into()));
        }
        Ok(Shard { index, of })
    }

    pub fn contains(&self, item_index: usize) -> bool {
        item_index % self.of == self.index
    }

    /// `results.jsonl` for the whole set, `results.shard-2-of-8.jsonl` for a shard.
    pub fn file_name(&self) -> String {
        if self.of == 1 {
            "results.jsonl".into()
        } else {
            format!("results.shard-{}-of-{}.jsonl", self.index, self.of)
        }
    }
}

/// First line of a results file: what produced the records below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub prunescope_eval: u32,
    pub dataset: String,
    pub data: String,
    pub model: String,
    /// Every setting, `method@keep`, in plan order.
    pub settings: Vec<String>,
    /// Shared pruning parameters (segments, mode, seed, ...), as text.
    pub params: String,
    pub tail: engine::Tail,
    /// Items in the whole dataset (before sharding).
    pub items: usize,
    pub shard: Option<Shard>,
    /// The parameters and decoding options every setting shared, as the `analyze` document
    /// writes them (None in files written before they were stored): with a run's method and
    /// keep ratio they name its output, so a clip's runs open as the explorer's cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<engine::PlanSettings>,
}

impl Header {
    pub fn new(dataset: &Dataset, data: &Path, model: &str, plan: &Plan, shard: Shard) -> Header {
        Header {
            prunescope_eval: 1,
            dataset: dataset.kind.name().into(),
            data: data.display().to_string(),
            model: model.into(),
            settings: plan
                .runs
                .iter()
                .map(|r| setting_label(r.method.name(), r.keep))
                .collect(),
            params: format!("{:?}", plan.params),
            tail: plan.decoding.tail,
            items: dataset.items.len(),
            shard: (shard.of > 1).then_some(shard),
            plan: Some(engine::PlanSettings::of(plan)),
        }
    }

    /// The first field (other than the shard) where two headers differ.
    fn differs(&self, o: &Header) -> Option<&'static str> {
        if self.dataset != o.dataset {
            Some("dataset")
        } else if self.model != o.model {
            Some("model")
        } else if self.settings != o.settings {
            Some("methods/keep ratios")
        } else if self.params != o.params || self.tail != o.tail {
            Some("pruning parameters")
        } else if self.items != o.items {
            Some("number of dataset items")
        } else {
            None
        }
    }
}

pub fn setting_label(method: &str, keep: f64) -> String {
    format!("{method}@{keep}")
}

/// A run's setting, `method@keep`, as the header lists it.
pub fn setting_of(r: &engine::RunResult) -> String {
    setting_label(r.method.name(), r.keep)
}

/// One clip: the item (so reports need nothing but this file) and every setting's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Position in the dataset, for a stable order after merging shards.
    pub index: usize,
    pub item: Item,
    #[serde(default)]
    pub duration_s: f64,
    #[serde(default)]
    pub encode_ms: f64,
    /// Every setting's output: the engine's result with its kept tokens, text, token ids and
    /// loop report, and its words when the run asked for them (`--words`); each token's
    /// attention is left out (it would multiply the file's size; `analyze --attention` gives
    /// it for one clip). Files written before these were stored read with them empty.
    #[serde(default)]
    pub runs: Vec<engine::RunResult>,
    /// The clip's part of the `analyze` document (its tokens and scores, once for every
    /// setting), so the clip opens in the explorer with its outputs and no model; None in
    /// files written before it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<engine::ClipReport>,
    /// Set when the clip could not be run (unreadable audio, ...); reports count these apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// The clip's `analyze` document as the run made it (its stored outputs, without each
    /// token's attention), with the prompt its question gave: None for a clip that failed or
    /// a file written before the clip's scores were stored.
    pub fn analysis(&self, header: &Header) -> Option<engine::Analysis> {
        let report = self.clip.clone()?;
        let plan = header.plan.clone().map(|mut p| {
            if let Some(q) = &self.item.question {
                p.decoding.prompt = Some(question_prompt(q, &self.item.choices));
            }
            p
        });
        Some(engine::Analysis {
            report,
            plan,
            runs: self.runs.clone(),
        })
    }
}

/// A results file read back: header and records.
#[derive(Debug, Clone)]
pub struct Results {
    pub header: Header,
    pub records: Vec<Record>,
}

impl Results {
    /// The records of the clips that ran (a failed clip is counted apart, never scored).
    pub fn ran(&self) -> Vec<&Record> {
        self.records.iter().filter(|r| r.error.is_none()).collect()
    }
}

/// Reads a results file. A torn last line (no newline, not JSON) is ignored and its byte
/// offset returned so a resume can cut it off.
pub fn read_results(path: &Path) -> Result<(Results, u64)> {
    let f = std::fs::File::open(path).map_err(io(path))?;
    let mut rd = std::io::BufReader::new(f);
    let mut header: Option<Header> = None;
    let mut records = Vec::new();
    let (mut offset, mut good_end) = (0u64, 0u64);
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        let read = rd.read_line(&mut line).map_err(io(path))?;
        if read == 0 {
            break;
        }
        n += 1;
        offset += read as u64;
        let complete = line.ends_with('\n');
        let text = line.trim();
        if text.is_empty() {
            good_end = offset;
            continue;
        }
        let bad = |msg: String| RunnerError::Format {
            path: path.to_path_buf(),
            line: n,
            msg,
        };
        if header.is_none() {
            header = Some(
                serde_json::from_str(text)
                    .map_err(|e| bad(format!("not a prunescope eval header: {e}")))?,
            );
            good_end = offset;
            continue;
        }
        if !complete {
            // A killed process tore this record: it is dropped and its clip runs again.
            break;
        }
        records.push(serde_json::from_str::<Record>(text).map_err(|e| bad(e.to_string()))?);
        good_end = offset;
    }
    let header = header.ok_or_else(|| RunnerError::Format {
        path: path.to_path_buf(),
        line: 1,
        msg: "empty results file".into(),
    })?;
    Ok((Results { header, records }, good_end))
}

/// Options of one evaluation run.
pub struct RunOptions<'a> {
    pub out: &'a Path,
    pub shard: Shard,
    /// Run at most this many clips of the shard (after skipping done ones); for smoke tests.
    pub limit: Option<usize>,
}

/// What a run reports as it goes (the command line draws its progress bar from it).
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// Clips to run now.
    Start {
        clips: usize,
    },
    /// A clip starts.
    Clip {
        id: &'a str,
    },
    /// A clip failed (recorded with its error; the run goes on).
    Failed {
        id: &'a str,
        error: &'a str,
    },
    /// A clip's record is written.
    Written,
    Finished,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub done_before: usize,
    pub ran: usize,
    pub failed: usize,
    pub remaining: usize,
}

/// Runs (or resumes) a shard of `dataset`, appending to `opts.out`.
pub fn run(
    session: &mut Session<'_>,
    dataset: &Dataset,
    data_path: &Path,
    plan: &Plan,
    opts: &RunOptions<'_>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(RunEvent<'_>),
) -> Result<RunSummary> {
    plan.check_for(&session.info)?;
    let label = session.info.label();
    let header = Header::new(dataset, data_path, &label, plan, opts.shard);
    let mut done: HashSet<String> = HashSet::new();
    if let Some(parent) = opts.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let exists = opts.out.is_file()
        && std::fs::metadata(opts.out)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
    if exists {
        let (prev, good_end) = read_results(opts.out)?;
        if let Some(what) = header.differs(&prev.header) {
            return Err(RunnerError::Mismatch {
                path: opts.out.to_path_buf(),
                what: what.into(),
            });
        }
        if prev.header.shard != header.shard {
            return Err(RunnerError::Mismatch {
                path: opts.out.to_path_buf(),
                what: "shard".into(),
            });
        }
        done.extend(prev.records.into_iter().map(|r| r.item.id));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(opts.out)
            .map_err(io(opts.out))?;
        f.set_len(good_end).map_err(io(opts.out))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.out)
        .map_err(io(opts.out))?;
    if !exists {
        let mut line = serde_json::to_string(&header).map_err(|e| RunnerError::Format {
            path: opts.out.to_path_buf(),
            line: 1,
            msg: e.to_string(),
        })?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io(opts.out))?;
    }
    let todo: Vec<(usize, &Item)> = dataset
        .items
        .iter()
        .enumerate()
        .filter(|(i, it)| opts.shard.contains(*i) && !done.contains(&it.id))
        .collect();
    let total_todo = todo.len();
    let todo: Vec<(usize, &Item)> = match opts.limit {
        Some(l) => todo.into_iter().take(l).collect(),
        None => todo,
    };
    progress(RunEvent::Start { clips: todo.len() });
    let mut summary = RunSummary {
        done_before: done.len(),
        ran: 0,
        failed: 0,
        remaining: total_todo - todo.len(),
    };
    for (index, item) in todo {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            summary.remaining += 1;
            continue;
        }
        progress(RunEvent::Clip { id: &item.id });
        let record = match run_item(session, plan, index, item, cancel) {
            Ok(r) => r,
            // Stopped: the clip is left for the next call.
            Err(HostError::Cancelled) => {
                summary.remaining += 1;
                continue;
            }
            // The model is gone: every later clip would fail the same way.
            Err(e @ HostError::Link(_)) => return Err(e.into()),
            Err(e) => {
                let e = e.to_string();
                summary.failed += 1;
                progress(RunEvent::Failed {
                    id: &item.id,
                    error: &e,
                });
                Record {
                    index,
                    item: item.clone(),
                    duration_s: 0.0,
                    encode_ms: 0.0,
                    runs: Vec::new(),
                    clip: None,
                    error: Some(e),
                }
            }
        };
        let mut line = serde_json::to_string(&record).map_err(|e| RunnerError::Format {
            path: opts.out.to_path_buf(),
            line: 0,
            msg: e.to_string(),
        })?;
        line.push('\n');
        // One write per record, so a killed process leaves at most one torn line.
        file.write_all(line.as_bytes()).map_err(io(opts.out))?;
        file.flush().map_err(io(opts.out))?;
        summary.ran += 1;
        progress(RunEvent::Written);
    }
    progress(RunEvent::Finished);
    Ok(summary)
}

/// The prompt for a question: the question alone (ClothoAQA), or with its options lettered
/// (MMAU), asking for the option so the accuracy rules (exact, letter, similarity) apply.
pub fn question_prompt(question: &str, choices: &[String]) -> String {
    if choices.is_empty() {
        return question.trim().to_string();
    }
    let mut p = format!("{}\nChoose one option:", question.trim());
    for (i, c) in choices.iter().enumerate() {
        let letter = char::from(b'A' + (i % 26) as u8);
        p.push_str(&format!("\n({letter}) {}", c.trim()));
    }
    p.push_str("\nAnswer with the option's letter and text.");
    p
}

/// Encodes one clip and decodes every setting (an error becomes the record's readable line).
fn run_item(
    session: &mut Session<'_>,
    plan: &Plan,
    index: usize,
    item: &Item,
    cancel: &AtomicBool,
) -> std::result::Result<Record, HostError> {
    // Questions go to the model as its prompt (prompted models; Whisper ignores it).
    let item_plan;
    let plan = match &item.question {
        Some(q) => {
            item_plan = Plan {
                decoding: engine::Decoding {
                    prompt: Some(question_prompt(q, &item.choices)),
                    ..plan.decoding.clone()
                },
                ..plan.clone()
            };
            &item_plan
        }
        None => plan,
    };
    let clip = ClipSource::Path(item.audio.clone());
    let a = session.analyze(clip, plan, Layers::Last, cancel, &mut |_| {})?;
    Ok(Record {
        index,
        item: item.clone(),
        duration_s: a.report.clip.duration_s,
        encode_ms: a.report.encode_ms,
        runs: a
            .runs
            .into_iter()
            .map(|r| engine::RunResult {
                attention: None,
                ..r
            })
            .collect(),
        clip: Some(a.report),
        error: None,
    })
}

/// Reads results files (shards, or restarted copies) as one run: headers must agree apart
/// from the shard; a clip present twice is kept once; records come out in dataset order.
pub fn join(inputs: &[PathBuf]) -> Result<Results> {
    let mut header: Option<Header> = None;
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    for p in inputs {
        let (r, _) = read_results(p)?;
        if let Some(h) = &header {
            if let Some(what) = h.differs(&r.header) {
                return Err(RunnerError::Mismatch {
                    path: p.clone(),
                    what: what.into(),
                });
            }
        } else {
            header = Some(r.header.clone());
        }
        for rec in r.records {
            if seen.insert(rec.item.id.clone()) {
                records.push(rec);
            }
        }
    }
    let mut header = header.ok_or_else(|| RunnerError::Format {
        path: PathBuf::new(),
        line: 0,
        msg: "nothing to merge".into(),
    })?;
    if inputs.len() > 1 {
        header.shard = None;
    }
    records.sort_by_key(|r| r.index);
    Ok(Results { header, records })
}

/// Joins shard files (or restarted copies) into one file ([`join`]).
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Results> {
    let mut results = join(inputs)?;
    results.header.shard = None;
    let format = |e: serde_json::Error| RunnerError::Format {
        path: out.to_path_buf(),
        line: 0,
        msg: e.to_string(),
    };
    let mut text = serde_json::to_string(&results.header).map_err(format)?;
    text.push('\n');
    for r in &results.records {
        text.push_str(&serde_json::to_string(r).map_err(format)?);
        text.push('\n');
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(out, text).map_err(io(out))?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::question_prompt;

    #[test]
    fn questions_become_prompts() {
        assert_eq!(question_prompt(" Is it raining? ", &[]), "Is it raining?");
        let p = question_prompt("What is heard?", &["Dog".into(), " Sine tone ".into()]);
        assert_eq!(
            p,
            "What is heard?\nChoose one option:\n(A) Dog\n(B) Sine tone\nAnswer with the option's letter and text."
        );
    }
}
