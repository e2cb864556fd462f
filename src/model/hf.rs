//! Hugging Face model directories: their JSON files (`config.json`, `generation_config.json`,
//! the sentence-transformers module configs), and `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, stored in f32, f16 or bf16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::{ModelError, Result};
use crate::limits::{read_at_most, Capped, MAX_MODEL_JSON, MAX_SAFETENSORS_HEADER};

/// Why a JSON file of a model directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} {}", too_large(*.size, *.max))]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{path}: not valid JSON: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// [`JsonError::TooLarge`]'s words after the path (a tokenizer's error is worded by its caller,
/// which names the file).
fn too_large(size: u64, max: u64) -> String {
    format!("is {size} bytes: prunescope reads model JSON files of at most {max} bytes")
}

/// The JSON document in `path`. What it must hold is the caller's to check (and to word).
pub fn read_json(path: &Path) -> std::result::Result<serde_json::Value, JsonError> {
    let bytes = read_model_file(path)?;
    serde_json::from_slice(&bytes).map_err(|source| JsonError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes of a model directory's JSON file, at most [`MAX_MODEL_JSON`].
fn read_model_file(path: &Path) -> std::result::Result<Vec<u8>, JsonError> {
    match read_at_most(path, MAX_MODEL_JSON) {
        Ok(Capped::Read(bytes)) => Ok(bytes),
        Ok(Capped::TooLarge(size)) => Err(JsonError::TooLarge {
            path: path.to_path_buf(),
            size,
            max: MAX_MODEL_JSON,
        }),
        Err(source) => Err(JsonError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A `tokenizer.json` as the tokenizers library reads it. That library panics on some
/// malformed files (a decoder of an unexpected shape: found by fuzzing, `fuzz/`), so a panic
/// in this call is caught, kept off stderr, and becomes the error's text.
pub fn read_tokenizer(path: &Path) -> std::result::Result<tokenizers::Tokenizer, String> {
    let bytes = read_model_file(path).map_err(|e| match e {
        JsonError::TooLarge { size, max, .. } => too_large(size, max),
        JsonError::Io { source, .. } => format!("cannot read it: {source}"),
        other => other.to_string(),
    })?;
    match crate::util::catch_quietly(|| tokenizers::Tokenizer::from_bytes(&bytes)) {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(why) => Err(format!("malformed: {why}")),
    }
}

/// The safetensors files of a directory (one file, or the shards named by the index).
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        check_safetensors_header(&single).map_err(|m| ModelError::corrupt(&single, m))?;
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
        check_safetensors_header(f).map_err(|m| ModelError::corrupt(f, m))?;
    }
    Ok(files)
}

/// Refuses a safetensors file whose header (its first 8 bytes give the length of the JSON table
/// that follows) is past [`MAX_SAFETENSORS_HEADER`] or past the file's end, before any reader
/// allocates or maps it.
pub fn check_safetensors_header(file: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("cannot read it: {e}");
    let mut f = std::fs::File::open(file).map_err(unreadable)?;
    let size = f.metadata().map_err(unreadable)?.len();
    let mut head = [0u8; 8];
    if size < 8 || f.read_exact(&mut head).is_err() {
        return Err(format!("is {size} bytes: too short for a safetensors file"));
    }
    let header = u64::from_le_bytes(head);
    if header > MAX_SAFETENSORS_HEADER {
        return Err(format!(
            "declares a safetensors header of {header} bytes: prunescope reads headers of at most {MAX_SAFETENSORS_HEADER} bytes"
        ));
    }
    if header > size - 8 {
        return Err(format!(
            "declares a safetensors header of {header} bytes, past the file's end ({size} bytes): truncated"
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{sparse_file as sparse, TempDir};

    #[test]
    fn a_model_json_file_at_the_limit_is_read_and_one_byte_more_is_refused_unread() {
        let dir = TempDir::new("json-limit").unwrap();
        let at = dir.path().join("config.json");
        sparse(&at, b"", MAX_MODEL_JSON);
        // Read to the end (zeros are not JSON), not refused for its size.
        assert!(matches!(read_json(&at), Err(JsonError::Invalid { .. })));
        let past = dir.path().join("tokenizer.json");
        sparse(&past, b"", MAX_MODEL_JSON + 1);
        let e = read_json(&past).unwrap_err().to_string();
        assert!(
            e.ends_with("tokenizer.json is 134217729 bytes: prunescope reads model JSON files of at most 134217728 bytes"),
            "{e}"
        );
        let e = read_tokenizer(&past).unwrap_err();
        assert!(e.contains("at most 134217728 bytes"), "{e}");
    }

    #[test]
    fn a_safetensors_header_at_the_limit_passes_and_one_byte_more_is_refused() {
        let dir = TempDir::new("st-limit").unwrap();
        let at = dir.path().join("at.safetensors");
        sparse(
            &at,
            &MAX_SAFETENSORS_HEADER.to_le_bytes(),
            8 + MAX_SAFETENSORS_HEADER,
        );
        assert_eq!(check_safetensors_header(&at), Ok(()));
        let past = dir.path().join("past.safetensors");
        sparse(
            &past,
            &(MAX_SAFETENSORS_HEADER + 1).to_le_bytes(),
            9 + MAX_SAFETENSORS_HEADER,
        );
        let e = check_safetensors_header(&past).unwrap_err();
        assert!(
            e.contains("of 100000001 bytes: prunescope reads headers of at most 100000000 bytes"),
            "{e}"
        );
        // A header that claims more than the file holds, and a file too short for the length.
        let cut = dir.path().join("cut.safetensors");
        sparse(&cut, &1000u64.to_le_bytes(), 100);
        assert!(check_safetensors_header(&cut)
            .unwrap_err()
            .contains("truncated"));
        let short = dir.path().join("short.safetensors");
        sparse(&short, b"abc", 3);
        assert!(check_safetensors_header(&short)
            .unwrap_err()
            .contains("too short"));
    }
}
