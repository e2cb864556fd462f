//! The evaluation sets, read from their published files. The user points at a folder (or a file);
//! every loader returns the same [`Item`]s, so the runner and the reports never look at formats.
//!
//! | kind | what the path holds |
//! |---|---|
//! | `asr` | a manifest, JSONL (`{"audio": path, "text": transcript}`; also `audio_filepath`/`path`, `transcript`/`sentence`) or CSV with those headers; paths relative to the manifest |
//! | `clotho` | `clotho_captions_evaluation.csv` (file_name, caption_1..caption_5), audio in `evaluation/` |
//! | `audiocaps` | `test.csv` (audiocap_id, youtube_id, start_time, caption; several rows per clip); audio in the folder, `test/` or `audio/`, named `{youtube_id}.*`, `Y{youtube_id}.*` or `{audiocap_id}.*` (wav, flac, mp3, ogg, m4a) |
//! | `clothoaqa` | `clotho_aqa_test.csv` (file_name, QuestionText, answer, confidence; one row per annotator), audio in `audio_files/`, `audio/` or the folder |
//! | `mmau` | `mmau-test-mini.json` (list of id, audio_id, question, choices, answer, task), audio paths relative to the JSON |

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::accuracy::normalize;
use crate::util::{parse_name, UnknownName};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{0}: expected {1}")]
    Missing(PathBuf, String),
}

pub type Result<T> = std::result::Result<T, DatasetError>;

fn fmt_err(path: &Path, msg: impl Into<String>) -> DatasetError {
    DatasetError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Which published set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Speech recognition manifest (JSONL or CSV): word error rate.
    Asr,
    /// Clotho v2 evaluation split: CIDEr-D.
    Clotho,
    /// AudioCaps test split: CIDEr-D.
    Audiocaps,
    /// ClothoAQA test split: accuracy on the unanimous yes/no and the non-binary subsets.
    Clothoaqa,
    /// MMAU test-mini: multiple-choice accuracy per task (sound, speech, music).
    Mmau,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Asr,
        DatasetKind::Clotho,
        DatasetKind::Audiocaps,
        DatasetKind::Clothoaqa,
        DatasetKind::Mmau,
    ];

    /// By name (case-insensitive); the error lists the known names.
    pub fn parse(s: &str) -> std::result::Result<DatasetKind, UnknownName> {
        parse_name("dataset", s, &Self::ALL.map(|k| (k.name(), k)))
    }

    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Asr => "asr",
            DatasetKind::Clotho => "clotho",
            DatasetKind::Audiocaps => "audiocaps",
            DatasetKind::Clothoaqa => "clothoaqa",
            DatasetKind::Mmau => "mmau",
        }
    }
}

/// One evaluation example: a clip, what the model is asked, what counts as right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub audio: PathBuf,
    /// ASR: the transcript; captions: every reference caption; AQA: the accepted answers;
    /// MMAU: the correct option's text.
    pub refs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Subset the item is scored in: ClothoAQA `unanimous`/`nonbinary`, MMAU task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A loaded set: its items in file order, and the entries whose audio is not on disk.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub items: Vec<Item>,
    pub missing_audio: Vec<PathBuf>,
}

pub fn load(kind: DatasetKind, path: &Path) -> Result<Dataset> {
    if !path.exists() {
        return Err(DatasetError::Missing(
            path.to_path_buf(),
            "a dataset folder or file".into(),
        ));
    }
    let items = match kind {
        DatasetKind::Asr => load_asr(path)?,
        DatasetKind::Clotho => load_clotho(path)?,
        DatasetKind::Audiocaps => load_audiocaps(path)?,
        DatasetKind::Clothoaqa => load_clothoaqa(path)?,
        DatasetKind::Mmau => load_mmau(path)?,
    };
    let (items, missing): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|i| i.audio.is_file());
    if items.is_empty() {
        return Err(fmt_err(
            path,
            format!(
                "no item has its audio on disk ({} listed{})",
                missing.len(),
                missing
                    .first()
                    .map(|m| format!(", first expected at {}", m.audio.display()))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(Dataset {
        kind,
        items,
        missing_audio: missing.into_iter().map(|i| i.audio).collect(),
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A file in `dir` (or `path` itself when it is a file) named one of `names`.
fn find_file(path: &Path, names: &[&str]) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    for n in names {
        let p = path.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DatasetError::Missing(
        path.to_path_buf(),
        names.join(" or "),
    ))
}

/// CSV rows as header -> value maps (headers trimmed; a UTF-8 BOM is ignored).
fn csv_rows(path: &Path) -> Result<Vec<HashMap<String, String>>> {
    let text = read(path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| fmt_err(path, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| fmt_err(path, e.to_string()))?;
        rows.push(
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect(),
        );
    }
    Ok(rows)
}

fn field<'a>(
    row: &'a HashMap<String, String>,
    names: &[&str],
    path: &Path,
    line: usize,
) -> Result<&'a str> {
    names
        .iter()
        .find_map(|n| row.get(*n))
        .map(String::as_str)
        .ok_or_else(|| fmt_err(path, format!("row {line}: no column {}", names.join("/"))))
}

fn relative(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p.trim());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p.strip_prefix("./").unwrap_or(p))
    }
}

const AUDIO_KEYS: [&str; 5] = ["audio", "audio_filepath", "audio_path", "path", "file"];
const TEXT_KEYS: [&str; 5] = ["text", "transcript", "sentence", "reference", "ref"];

fn load_asr(path: &Path) -> Result<Vec<Item>> {
    let file = find_file(path, &["manifest.jsonl", "manifest.csv"])?;
    let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut items = Vec::new();
    if is_csv {
        for (i, row) in csv_rows(&file)?.iter().enumerate() {
            let audio = field(row, &AUDIO_KEYS, &file, i + 2)?;
            let text = field(row, &TEXT_KEYS, &file, i + 2)?;
            let id = row.get("id").cloned().unwrap_or_else(|| audio.to_string());
            items.push(asr_item(id, relative(&base, audio), text));
        }
    } else {
        for (i, line) in read(&file)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| fmt_err(&file, format!("line {}: {e}", i + 1)))?;
            let get = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()));
            let audio = get(&AUDIO_KEYS)
                .ok_or_else(|| fmt_err(&file, format!("line {}: no \"audio\" field", i + 1)))?;
            let text = get(&TEXT_KEYS)
                .ok_or_else(|| fmt_err(&file, format!("line {}: no \"text\" field", i + 1)))?;
            let id = get(&["id"]).unwrap_or(audio).to_string();
            items.push(asr_item(id, relative(&base, audio), text));
        }
    }
    unique_ids(&file, &items)?;
    Ok(items)
}

fn asr_item(id: String, audio: PathBuf, text: &str) -> Item {
    Item {
        id,
        audio,
        refs: vec![text.to_string()],
        question: None,
        choices: Vec::new(),
        group: None,
    }
}

fn unique_ids(path: &Path, items: &[Item]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for it in items {
        if !seen.insert(&it.id) {
            return Err(fmt_err(path, format!("id `{}` appears twice", it.id)));
        }
    }
    Ok(())
}

fn load_clotho(path: &Path) -> Result<Vec<Item>> {
    let file = find_file(path, &["clotho_captions_evaluation.csv"])?;
    let base = file.parent().unwrap_or(Path::new("."));
    let audio_dir = base.join("evaluation");
    let mut items = Vec::new();
    for (i, row) in csv_rows(&file)?.iter().enumerate() {
        let name = field(row, &["file_name"], &file, i + 2)?;
        let refs: Vec<String> = (1..=5)
            .filter_map(|k| row.get(&format!("caption_{k}")))
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .collect();
        if refs.is_empty() {
            return Err(fmt_err(
                &file,
                format!("row {}: no caption_1..caption_5", i + 2),
            ));
        }
        items.push(caption_item(name.to_string(), audio_dir.join(name), refs));
    }
    unique_ids(&file, &items)?;
    Ok(items)
}

fn caption_item(id: String, audio: PathBuf, refs: Vec<String>) -> Item {
    Item {
        id,
        audio,
        refs,
        question: None,
        choices: Vec::new(),
        group: None,
    }
}

const AUDIO_EXTS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "m4a"];

fn find_audio(dirs: &[PathBuf], stems: &[String]) -> Option<PathBuf> {
    for d in dirs {
        for s in stems {
            for e in AUDIO_EXTS {
                let p = d.join(format!("{s}.{e}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    None
}

fn load_audiocaps(path: &Path) -> Result<Vec<Item>> {
    let file = find_file(path, &["test.csv"])?;
    let base = file.parent().unwrap_or(Path::new("."));
    let dirs = [base.to_path_buf(), base.join("test"), base.join("audio")];
    // youtube_id -> (audiocap_ids, captions), in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut clips: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for (i, row) in csv_rows(&file)?.iter().enumerate() {
        let yt = field(row, &["youtube_id"], &file, i + 2)?.to_string();
        let cap_id = field(row, &["audiocap_id"], &file, i + 2)?.to_string();
        let caption = field(row, &["caption"], &file, i + 2)?.to_string();
        let e = clips.entry(yt.clone()).or_insert_with(|| {
            order.push(yt.clone());
            Default::default()
        });
        e.0.push(cap_id);
        e.1.push(caption);
    }
    Ok(order
        .into_iter()
        .filter_map(|yt| {
            let (ids, refs) = clips.remove(&yt)?;
            let mut stems = vec![yt.clone(), format!("Y{yt}")];
            stems.extend(ids);
            let audio = find_audio(&dirs, &stems).unwrap_or_else(|| base.join(format!("{yt}.wav")));
            Some(caption_item(yt, audio, refs))
        })
        .collect())
}

fn load_clothoaqa(path: &Path) -> Result<Vec<Item>> {
    let file = find_file(path, &["clotho_aqa_test.csv", "test.csv"])?;
    let base = file.parent().unwrap_or(Path::new("."));
    let dirs = [
        base.join("audio_files"),
        base.join("audio"),
        base.to_path_buf(),
    ];
    let mut order: Vec<(String, String)> = Vec::new();
    let mut answers: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (i, row) in csv_rows(&file)?.iter().enumerate() {
        let name = field(row, &["file_name"], &file, i + 2)?.to_string();
        let q = field(row, &["QuestionText", "question"], &file, i + 2)?.to_string();
        let a = field(row, &["answer"], &file, i + 2)?.to_string();
        let key = (name, q);
        answers
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key.clone());
                Vec::new()
            })
            .push(a);
    }
    let mut items = Vec::new();
    for (n, key) in order.into_iter().enumerate() {
        let Some(ans) = answers.remove(&key) else {
            continue;
        };
        let norm: Vec<String> = ans.iter().map(|a| normalize(a)).collect();
        let binary = |a: &String| a == "yes" || a == "no";
        let (group, refs) = if norm.iter().all(binary) {
            if norm.iter().all(|a| a == &norm[0]) {
                ("unanimous", vec![norm[0].clone()])
            } else {
                // Annotators disagree on a yes/no question: in neither of the paper's subsets.
                continue;
            }
        } else if norm.iter().any(binary) {
            continue;
        } else {
            let mut uniq: Vec<String> = Vec::new();
            for a in ans {
                if !uniq.iter().any(|u| normalize(u) == normalize(&a)) {
                    uniq.push(a);
                }
            }
            ("nonbinary", uniq)
        };
        let (name, question) = key;
        let audio = dirs
            .iter()
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| dirs[0].join(&name));
        items.push(Item {
            id: format!("{n:05}:{name}"),
            audio,
            refs,
            question: Some(question),
            choices: Vec::new(),
            group: Some(group.into()),
        });
    }
    Ok(items)
}

#[derive(Deserialize)]
struct MmauEntry {
    id: serde_json::Value,
    audio_id: String,
    question: String,
    choices: Vec<String>,
    answer: String,
    #[serde(default)]
    task: Option<String>,
}

fn load_mmau(path: &Path) -> Result<Vec<Item>> {
    let file = find_file(path, &["mmau-test-mini.json", "test-mini.json"])?;
    let base = file.parent().unwrap_or(Path::new("."));
    let entries: Vec<MmauEntry> =
        serde_json::from_str(&read(&file)?).map_err(|e| fmt_err(&file, e.to_string()))?;
    let items: Vec<Item> = entries
        .into_iter()
        .map(|e| Item {
            id: match e.id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            audio: relative(base, &e.audio_id),
            refs: vec![e.answer],
            question: Some(e.question),
            choices: e.choices,
            group: e.task,
        })
        .collect();
    unique_ids(&file, &items)?;
    Ok(items)
}
