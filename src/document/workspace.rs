//! A saved explorer session (docs/SPEC.md section 10): one JSON file holding the `analyze`
//! document of the grid, the explorer's own choices (the slider's method and keep ratio, the
//! grid's extra rows, the reference, the focused cell, the view), the model that computed it,
//! and the clip: its path, its SHA-256 and, below [`EMBED_LIMIT`] by default, its bytes, so it
//! opens on a machine with neither the clip nor the model. The pruning parameters and the
//! decoding options (S, score source, tail, prompt, ...) are the document's `plan`: they are
//! not written twice.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io, json_error, DocError, Result};
use crate::engine::{Analysis, RunMethod};
use crate::prune::Method;

/// The format this version writes and reads.
pub const FORMAT: u32 = 1;

/// Clips up to this size travel inside the workspace unless asked otherwise.
pub const EMBED_LIMIT: u64 = 20 * 1024 * 1024;

/// The file, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workspace {
    /// The format's version ([`FORMAT`]).
    pub prunescope_workspace: u32,
    /// `prunescope VERSION`.
    pub written_by: String,
    /// The model that computed the document, for readers (the document's `model` and
    /// `runtime` are what is read back).
    pub model: ModelRef,
    pub clip: ClipRef,
    pub explorer: ExplorerView,
    /// The grid's runs with their clip-level part and `plan`, exactly as `analyze --json`
    /// writes them.
    pub analysis: Analysis,
}

/// The model's label, device and dtype.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub label: String,
    pub device: String,
    pub dtype: String,
}

/// The clip: where it was, what it was, and (small ones) the file itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRef {
    pub path: String,
    /// Of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file's bytes, base64 (standard alphabet, padded); absent when not embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<String>,
}

/// What the explorer showed that the document does not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplorerView {
    /// The slider's method and keep ratio (percent).
    pub method: Method,
    pub keep_percent: f64,
    /// The grid's extra rows.
    pub extensions: Vec<Method>,
    pub peers: Vec<RunMethod>,
    /// The reference transcript the cells' WER is computed against.
    pub reference: String,
    /// The focused cell, `method@keep` (the words lane and the attention lane show it).
    pub focused: Option<String>,
    /// The lanes' visible range and the playhead (s).
    pub view: Option<[f64; 2]>,
    pub playhead: f64,
}

impl Default for ExplorerView {
    fn default() -> Self {
        ExplorerView {
            method: Method::Segmentwise,
            keep_percent: 25.0,
            extensions: Vec::new(),
            peers: Vec::new(),
            reference: String::new(),
            focused: None,
            view: None,
            playhead: 0.0,
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

impl Workspace {
    /// A workspace of `analysis` and the explorer's `view`, with the clip file's `bytes`
    /// (embedded when `embed`).
    pub fn new(analysis: Analysis, view: ExplorerView, bytes: &[u8], embed: bool) -> Workspace {
        let r = &analysis.report;
        Workspace {
            prunescope_workspace: FORMAT,
            written_by: format!("prunescope {}", env!("CARGO_PKG_VERSION")),
            model: ModelRef {
                label: r.model_label(),
                device: r.runtime.device.clone(),
                dtype: r.runtime.dtype.clone(),
            },
            clip: ClipRef {
                path: r.clip.path.clone(),
                sha256: sha256(bytes),
                bytes: bytes.len() as u64,
                embedded: embed.then(|| base64::encode(bytes)),
            },
            explorer: view,
            analysis,
        }
    }

    /// Writes it to `path` whole or not at all (a temporary file beside it, then renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec(self).map_err(|e| DocError::Malformed {
            path: path.to_path_buf(),
            what: "workspace",
            detail: e.to_string(),
        })?;
        let name = path
            .file_name()
            .map_or_else(|| "workspace".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.partial"));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(path)(e)
        })
    }

    /// The embedded clip's bytes, checked against its SHA-256 (None when not embedded).
    pub fn embedded_clip(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let Some(b64) = &self.clip.embedded else {
            return Ok(None);
        };
        let bad = |detail: String| DocError::Malformed {
            path: path.to_path_buf(),
            what: "workspace",
            detail,
        };
        let bytes = base64::decode(b64).map_err(|e| bad(format!("its clip is not base64: {e}")))?;
        if sha256(&bytes) != self.clip.sha256 {
            return Err(bad(
                "its embedded clip does not match the clip's SHA-256 (the file was altered)".into(),
            ));
        }
        Ok(Some(bytes))
    }
}

/// Reads a workspace whose `prunescope_workspace` field is `format`: the version is checked
/// before anything else is read, so a newer file says so rather than naming a field.
pub(super) fn read(path: &Path, text: &str, format: &serde_json::Value) -> Result<Workspace> {
    let found = format.as_u64();
    if found != Some(u64::from(FORMAT)) {
        #[derive(Deserialize)]
        struct By {
            written_by: Option<String>,
        }
        let by = serde_json::from_str::<By>(text)
            .ok()
            .and_then(|b| b.written_by)
            .unwrap_or_else(|| "an unknown version".into());
        let found = found.unwrap_or(0);
        return Err(DocError::Version {
            path: path.to_path_buf(),
            found,
            by,
            reads: FORMAT,
            hint: if found > u64::from(FORMAT) {
                ": update prunescope to open it"
            } else {
                ""
            },
        });
    }
    serde_json::from_str(text).map_err(|e| json_error(path, "workspace", &e, text))
}
