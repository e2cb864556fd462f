//! What prunescope computed, opened again with no model: an `analyze --json` document (or the
//! explorer's exported `analysis.json`), a saved workspace ([`workspace`]: the document with
//! the explorer's settings and, for a small clip, the clip itself), or an eval run (its results
//! file or the folder that holds it). [`open`] tells them apart by their content, not their
//! name; [`locate_clip`] finds the audio a document names.

pub mod workspace;

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::engine::worker::ClipSource;
use crate::engine::Analysis;
use crate::eval::runner::{self, Results, RunnerError};
use crate::limits::Capped;
pub use workspace::Workspace;

/// What a path held.
pub enum Opened {
    /// An `analyze --json` document.
    Analysis(Box<Analysis>),
    Workspace(Box<Workspace>),
    /// An eval run: its results, shards joined.
    Run(Box<Results>),
}

impl Opened {
    /// What it is, in a few words ("an analysis", "a workspace", "an eval run").
    pub fn kind(&self) -> &'static str {
        match self {
            Opened::Analysis(_) => "an analysis",
            Opened::Workspace(_) => "a workspace",
            Opened::Run(_) => "an eval run",
        }
    }
}

/// Why a path cannot be opened: each names the path and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(PathBuf),
    /// Not JSON, or JSON of something else.
    #[error("{path} is not a prunescope document ({why})")]
    Foreign { path: PathBuf, why: String },
    /// The JSON ends before its last value does.
    #[error("{path} is cut short ({detail}): it was not completely written or copied")]
    Truncated { path: PathBuf, detail: String },
    /// The right kind of document with a field missing or of the wrong type.
    #[error("{path} is not a valid {what}: {detail}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    /// A workspace of a format this version does not read.
    #[error("{path} is a workspace of format {found}, written by {by}; this prunescope reads format {reads}{hint}")]
    Version {
        path: PathBuf,
        found: u64,
        by: String,
        reads: u32,
        hint: &'static str,
    },
    #[error("{path} is {size} bytes: prunescope opens documents of at most {max} bytes")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{0} holds no eval results (results.jsonl or results.shard-*.jsonl)")]
    NoResults(PathBuf),
    /// A folder that is a model, not a run.
    #[error("{0} is a model directory, not a document: open it as the model")]
    ModelDir(PathBuf),
    #[error(transparent)]
    Run(#[from] RunnerError),
}

pub type Result<T> = std::result::Result<T, DocError>;

pub use crate::limits::MAX_DOCUMENT;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DocError + '_ {
    move |source| DocError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which keys a JSON object has, read without building the rest.
#[derive(Deserialize)]
struct Probe {
    prunescope_workspace: Option<serde_json::Value>,
    prunescope_eval: Option<IgnoredAny>,
    runs: Option<IgnoredAny>,
    scores: Option<IgnoredAny>,
}

/// Whether `path` is something [`open`] reads rather than a clip or a model: a folder holding
/// eval results, or a file whose first byte (after white space) opens a JSON object.
pub fn is_document(path: &Path) -> bool {
    if path.is_dir() {
        return run_files(path).is_ok_and(|f| !f.is_empty());
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Whether a file's first line is an eval results header (`prunescope_eval`).
fn is_results_file(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    use std::io::{BufRead, Read};
    let mut first = String::new();
    let mut rd = std::io::BufReader::new(f.take(64 * 1024));
    if rd.read_line(&mut first).is_err() {
        return false;
    }
    first.contains("\"prunescope_eval\"")
        && serde_json::from_str::<Probe>(first.trim()).is_ok_and(|p| p.prunescope_eval.is_some())
}

/// The results files of an eval run's folder: `results.jsonl`, else every shard's.
pub fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let whole = dir.join("results.jsonl");
    if whole.is_file() {
        return Ok(vec![whole]);
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results.shard-") && n.ends_with(".jsonl"))
        })
        .collect();
    shards.sort();
    Ok(shards)
}

/// Opens `path`: a folder of eval results, an eval results file, a workspace or an analysis
/// document, told apart by their content.
pub fn open(path: &Path) -> Result<Opened> {
    if path.is_dir() {
        if crate::model::detect_format(path).is_ok() {
            return Err(DocError::ModelDir(path.to_path_buf()));
        }
        let files = run_files(path)?;
        if files.is_empty() {
            return Err(DocError::NoResults(path.to_path_buf()));
        }
        return Ok(Opened::Run(Box::new(runner::join(&files)?)));
    }
    // Results files are read line by line, whatever their size.
    if is_results_file(path) {
        return Ok(Opened::Run(Box::new(runner::join(&[path.to_path_buf()])?)));
    }
    let bytes = match crate::limits::read_at_most(path, MAX_DOCUMENT).map_err(io(path))? {
        Capped::Read(bytes) => bytes,
        Capped::TooLarge(size) => {
            return Err(DocError::TooLarge {
                path: path.to_path_buf(),
                size,
                max: MAX_DOCUMENT,
            })
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| DocError::Foreign {
        path: path.to_path_buf(),
        why: format!("not UTF-8 text: {e}"),
    })?;
    let body = text.trim_start();
    if body.is_empty() {
        return Err(DocError::Empty(path.to_path_buf()));
    }
    let probe: Probe =
        serde_json::from_str(body).map_err(|e| json_error(path, "document", &e, body))?;
    if let Some(format) = probe.prunescope_workspace {
        return workspace::read(path, body, &format).map(|w| Opened::Workspace(Box::new(w)));
    }
    if probe.runs.is_some() && probe.scores.is_some() {
        let a = serde_json::from_str(body).map_err(|e| json_error(path, "analysis", &e, body))?;
        return Ok(Opened::Analysis(Box::new(a)));
    }
    Err(DocError::Foreign {
        path: path.to_path_buf(),
        why: "JSON without `scores` and `runs` (an analysis), `prunescope_workspace` or \
              `prunescope_eval`"
            .into(),
    })
}

/// A JSON error in `text` (the file's content) worded for what it means to the user: not JSON,
/// cut short, or the right kind of document with something wrong inside. A file that ends
/// inside a number or a keyword (`1.2e`, `tru`) is cut short like one that ends between
/// values: serde calls that a syntax error at the last character.
pub(crate) fn json_error(
    path: &Path,
    what: &'static str,
    e: &serde_json::Error,
    text: &str,
) -> DocError {
    use serde_json::error::Category;
    let path = path.to_path_buf();
    let body = text.trim_end();
    let last_line = body.lines().count().max(1);
    let last_column = body.lines().last().map_or(0, |l| l.chars().count());
    let at_end = e.line() == last_line && e.column() >= last_column;
    match e.classify() {
        Category::Syntax if at_end => DocError::Truncated {
            path,
            detail: e.to_string(),
        },
        Category::Eof => DocError::Truncated {
            path,
            detail: e.to_string(),
        },
        Category::Syntax | Category::Io => DocError::Foreign {
            path,
            why: format!("not JSON: {e}"),
        },
        Category::Data => DocError::Malformed {
            path,
            what,
            detail: e.to_string(),
        },
    }
}

/// Where a document's audio was found, or why not.
pub struct Located {
    /// The clip to decode (None: the audio is missing; the document's other lanes still show).
    pub source: Option<ClipSource>,
    /// What the user should know: where it was found instead, or why it is missing.
    pub note: Option<String>,
}

/// Finds the clip a document names: the bytes a workspace carries (checked against its
/// SHA-256), the path it names, or a file of the same name beside the document (a folder
/// copied whole). With `sha256`, a file found on disk must match it.
pub fn locate_clip(
    doc: &Path,
    clip_path: &str,
    sha256: Option<&str>,
    embedded: Option<Vec<u8>>,
) -> Located {
    let named = PathBuf::from(clip_path);
    if let Some(bytes) = embedded {
        return Located {
            source: Some(ClipSource::Bytes { name: named, bytes }),
            note: None,
        };
    }
    let beside = named
        .file_name()
        .and_then(|n| doc.parent().map(|d| d.join(n)));
    let mut mismatch = None;
    for candidate in std::iter::once(named.clone()).chain(beside) {
        if clip_path.is_empty() || !candidate.is_file() {
            continue;
        }
        if let Some(want) = sha256 {
            match workspace::sha256_file(&candidate) {
                Ok(got) if got == want => {}
                Ok(_) => {
                    mismatch = Some(candidate);
                    continue;
                }
                Err(_) => continue,
            }
        }
        let note = (candidate != named).then(|| {
            format!(
                "{} not found; using {} beside the document",
                named.display(),
                candidate.display()
            )
        });
        return Located {
            source: Some(ClipSource::Path(candidate)),
            note,
        };
    }
    let why = match (mismatch, clip_path.is_empty()) {
        (_, true) => "the document names no audio file".to_string(),
        (Some(p), _) => format!(
            "{} is not the clip the workspace was saved with (its SHA-256 differs)",
            p.display()
        ),
        (None, _) => format!("{} not found", named.display()),
    };
    Located {
        source: None,
        note: Some(format!("audio missing: {why}")),
    }
}

#[cfg(test)]
mod tests;
