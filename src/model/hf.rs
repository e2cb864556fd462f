//! Hugging Face model directories: their JSON files (`config.json`, `generation_config.json`,
//! the sentence-transformers module configs), and `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, stored in f32, f16 or bf16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::{ModelError, Result};

/// Why a JSON file of a model directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The JSON document in `path`. What it must hold is the caller's to check (and to word).
pub fn read_json(path: &Path) -> std::result::Result<serde_json::Value, JsonError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| JsonError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// A `tokenizer.json` as the tokenizers library reads it. That library panics on some
/// malformed files (a decoder of an unexpected shape: found by fuzzing, `fuzz/`), so a panic
/// in this call is caught, kept off stderr, and becomes the error's text.
pub fn read_tokenizer(path: &Path) -> std::result::Result<tokenizers::Tokenizer, String> {
    thread_local! {
        static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let read = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(path));
    QUIET.with(|q| q.set(false));
    match read {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the tokenizers library gave up on it");
            Err(format!("malformed: {why}"))
        }
    }
}

/// The safetensors files of a directory (one file, or the shards named by the index).
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let json = read_json(&index)?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::corrupt(&index, "has no `weight_map` object"))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for v in map.values() {
        let name = v.as_str().ok_or_else(|| {
            ModelError::corrupt(&index, "a `weight_map` value is not a file name")
        })?;
        let p = dir.join(name);
        if !files.contains(&p) {
            files.push(p);
        }
    }
    for f in &files {
        if !f.is_file() {
            return Err(ModelError::corrupt(
                &index,
                format!("names shard {} which is missing", f.display()),
            ));
        }
    }
    Ok(files)
}

/// Reads every tensor of the directory's safetensors into memory as f32 on `device`.
pub fn load_all(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for file in safetensors_files(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| ModelError::io(&file, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            ModelError::corrupt(&file, format!("not a valid safetensors file: {e}"))
        })?;
        for (name, view) in st.tensors() {
            let t = view_to_f32(&view, device)
                .map_err(|m| ModelError::corrupt(&file, format!("tensor `{name}`: {m}")))?;
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// Why a safetensors tensor cannot be read as f32.
#[derive(Debug, thiserror::Error)]
enum ViewError {
    #[error("unsupported dtype {0:?} (expected f32, f16 or bf16)")]
    Dtype(safetensors::Dtype),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn view_to_f32(
    view: &safetensors::tensor::TensorView<'_>,
    device: &Device,
) -> std::result::Result<Tensor, ViewError> {
    use safetensors::Dtype;
    let d = view.data();
    let shape = view.shape().to_vec();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => return Err(ViewError::Dtype(other)),
    };
    Ok(Tensor::from_vec(values, shape, device)?.to_dtype(DType::F32)?)
}

/// Writes tensors as one `model.safetensors` in the given dtype (used to convert CTranslate2
/// models to the Hugging Face layout).
pub fn save(tensors: &HashMap<String, Tensor>, path: &Path, dtype: DType) -> Result<()> {
    let converted: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(dtype)?.contiguous()?)))
        .collect::<std::result::Result<_, candle_core::Error>>()?;
    candle_core::safetensors::save(&converted, path)?;
    Ok(())
}
