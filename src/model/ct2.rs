//! Reader for CTranslate2 `model.bin` (binary version 6) Whisper models, mapped onto Hugging Face
//! tensor names (SPEC.md section 6) so one model implementation serves both formats.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{ModelError, Result};

/// Why a model.bin does not parse (SPEC.md section 6), one readable line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ct2Error {
    #[error("file ends early (wanted {want} bytes at offset {at}, file has {len}): truncated or not a CTranslate2 model")]
    Truncated { want: usize, at: usize, len: usize },
    #[error("unsupported CTranslate2 binary version {0} (this reader knows version 6)")]
    Version(u32),
    #[error("a name is not valid UTF-8")]
    Utf8,
    #[error("unknown dtype id {0}")]
    Dtype(u8),
    #[error("variable `{name}` has unknown dtype id {dtype}")]
    VariableDtype { name: String, dtype: u8 },
    #[error("variable `{name}` has an absurd shape {shape:?}")]
    AbsurdShape { name: String, shape: Vec<usize> },
    #[error("variable `{name}` claims {nbytes} bytes for shape {shape:?}: corrupt file")]
    Size {
        name: String,
        nbytes: usize,
        shape: Vec<usize>,
    },
    #[error("{0} unexpected bytes after the last entry: corrupt file")]
    Trailing(usize),
}

type Parsed<T> = std::result::Result<T, Ct2Error>;

/// One raw variable of a model.bin.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: u8,
    pub data: Vec<u8>,
}

impl Variable {
    /// The values as f32 (f16/bf16/f32 stored; integer scalars converted).
    pub fn to_f32(&self) -> Parsed<Vec<f32>> {
        let d = &self.data;
        Ok(match self.dtype {
            0 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            1 => d.iter().map(|&b| b as i8 as f32).collect(),
            2 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            3 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            4 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            5 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            t => return Err(Ct2Error::Dtype(t)),
        })
    }

    fn elem_size(dtype: u8) -> Option<usize> {
        match dtype {
            0 | 3 => Some(4),
            1 => Some(1),
            2 | 4 | 5 => Some(2),
            _ => None,
        }
    }
}

/// A parsed model.bin: spec name, revision, variables by name (aliases resolved).
pub struct ModelBin {
    pub spec: String,
    pub revision: u32,
    pub variables: HashMap<String, Variable>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(Ct2Error::Truncated {
                want: n,
                at: self.pos,
                len: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Parsed<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Parsed<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Parsed<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Parsed<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| Ct2Error::Utf8)
    }
}

/// Parses a model.bin held in memory.
pub fn parse(buf: &[u8]) -> Parsed<ModelBin> {
    let mut c = Cursor { buf, pos: 0 };
    let version = c.u32()?;
    if version != 6 {
        return Err(Ct2Error::Version(version));
    }
    let spec = c.string()?;
    let revision = c.u32()?;
    let n_vars = c.u32()? as usize;
    let mut variables = HashMap::with_capacity(n_vars.min(4096));
    for _ in 0..n_vars {
        let name = c.string()?;
        let ndim = c.u8()? as usize;
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(c.u32()? as usize);
        }
        let dtype = c.u8()?;
        let nbytes = c.u32()? as usize;
        let elem = Variable::elem_size(dtype).ok_or_else(|| Ct2Error::VariableDtype {
            name: name.clone(),
            dtype,
        })?;
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Ct2Error::AbsurdShape {
                name: name.clone(),
                shape: shape.clone(),
            })?;
        if count.checked_mul(elem) != Some(nbytes) {
            return Err(Ct2Error::Size {
                name,
                nbytes,
                shape,
            });
        }
        let data = c.take(nbytes)?.to_vec();
        variables.insert(name, Variable { shape, dtype, data });
    }
    // Aliases are optional at the very end of older files.
    if c.pos < buf.len() {
        let n_alias = c.u32()? as usize;
        for _ in 0..n_alias {
            let alias = c.string()?;
            let target = c.string()?;
            if let Some(v) = variables.get(&target).cloned() {
                variables.insert(alias, v);
            }
        }
    }
    if c.pos != buf.len() {
        return Err(Ct2Error::Trailing(buf.len() - c.pos));
    }
    Ok(ModelBin {
        spec,
        revision,
        variables,
    })
}

/// Whisper weights read from a CTranslate2 model.bin, under Hugging Face names, in f32.
pub struct Ct2Whisper {
    pub tensors: HashMap<String, Tensor>,
    pub encoder_heads: usize,
    pub decoder_heads: usize,
}

/// Reads `path` (a model.bin) and maps it onto Hugging Face Whisper names.
pub fn load_whisper(path: &Path, device: &Device) -> Result<Ct2Whisper> {
    let buf = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let bin = parse(&buf).map_err(|source| ModelError::Ct2 {
        path: path.to_path_buf(),
        source,
    })?;
    drop(buf);
    if bin.spec != "WhisperSpec" {
        return Err(ModelError::corrupt(
            path,
            format!("is a CTranslate2 `{}` model, not a Whisper model", bin.spec),
        ));
    }
    Mapper {
        bin: &bin,
        path,
        device,
        out: HashMap::new(),
    }
    .run()
}

struct Mapper<'a> {
    bin: &'a ModelBin,
    path: &'a Path,
    device: &'a Device,
    out: HashMap<String, Tensor>,
}

impl Mapper<'_> {
    fn var(&self, name: &str) -> Result<&Variable> {
        self.bin
            .variables
            .get(name)
            .ok_or_else(|| ModelError::corrupt(self.path, format!("lacks variable `{name}`")))
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let v = self.var(name)?;
        let data = v
            .to_f32()
            .map_err(|m| ModelError::corrupt(self.path, format!("`{name}`: {m}")))?;
        Ok(Tensor::from_vec(data, v.shape.as_slice(), self.device)?.to_dtype(DType::F32)?)
    }

    fn scalar(&self, name: &str) -> Result<f32> {
        let v = self.var(name)?;
        let d = v
            .to_f32()
            .map_err(|m| ModelError::corrupt(self.path, format!("`{name}`: {m}")))?;
        d.first()
            .copied()
            .ok_or_else(|| ModelError::corrupt(self.path, format!("`{name}` is empty")))
    }

    fn put(&mut self, hf: String, t: Tensor) {
        self.out.insert(hf, t);
    }

    fn copy(&mut self, hf: &str, ct: &str) -> Result<()> {
        let t = self.tensor(ct)?;
        self.put(hf.to_string(), t);
        Ok(())
    }

    fn linear(&mut self, hf: &str, ct: &str) -> Result<()> {
        self.copy(&format!("{hf}.weight"), &format!("{ct}/weight"))?;
        self.copy(&format!("{hf}.bias"), &format!("{ct}/bias"))
    }

    fn layer_norm(&mut self, hf: &str, ct: &str) -> Result<()> {
        self.copy(&format!("{hf}.weight"), &format!("{ct}/gamma"))?;
        self.copy(&format!("{hf}.bias"), &format!("{ct}/beta"))
    }

    /// Splits a fused projection's rows into `names.len()` equal parts. A `None` bias slot marks
    /// a projection without bias in Hugging Face (the key projection; CTranslate2 stores zeros).
    fn split(&mut self, ct: &str, hf: &[(&str, bool)]) -> Result<()> {
        let w = self.tensor(&format!("{ct}/weight"))?;
        let b = self.tensor(&format!("{ct}/bias"))?;
        let rows = w.dim(0)?;
        if rows % hf.len() != 0 {
            return Err(ModelError::corrupt(
                self.path,
                format!(
                    "`{ct}` has {rows} rows, not divisible into {} parts",
                    hf.len()
                ),
            ));
        }
        let d = rows / hf.len();
        for (i, (name, has_bias)) in hf.iter().enumerate() {
            self.put(
                format!("{name}.weight"),
                w.narrow(0, i * d, d)?.contiguous()?,
            );
            if *has_bias {
                self.put(format!("{name}.bias"), b.narrow(0, i * d, d)?.contiguous()?);
            }
        }
        Ok(())
    }

    fn count_layers(&self, stack: &str) -> usize {
        let prefix = format!("{stack}/layer_");
        self.bin
            .variables
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next()?.parse::<usize>().ok())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    fn self_attention(&mut self, hf: &str, ct: &str) -> Result<()> {
        let (q, k, v) = (
            format!("{hf}.self_attn.q_proj"),
            format!("{hf}.self_attn.k_proj"),
            format!("{hf}.self_attn.v_proj"),
        );
        self.split(
            &format!("{ct}/self_attention/linear_0"),
            &[(&q, true), (&k, false), (&v, true)],
        )?;
        self.linear(
            &format!("{hf}.self_attn.out_proj"),
            &format!("{ct}/self_attention/linear_1"),
        )?;
        self.layer_norm(
            &format!("{hf}.self_attn_layer_norm"),
            &format!("{ct}/self_attention/layer_norm"),
        )
    }

    fn ffn(&mut self, hf: &str, ct: &str) -> Result<()> {
        self.linear(&format!("{hf}.fc1"), &format!("{ct}/ffn/linear_0"))?;
        self.linear(&format!("{hf}.fc2"), &format!("{ct}/ffn/linear_1"))?;
        self.layer_norm(
            &format!("{hf}.final_layer_norm"),
            &format!("{ct}/ffn/layer_norm"),
        )
    }

    fn run(mut self) -> Result<Ct2Whisper> {
        let (e, d) = ("model.encoder", "model.decoder");
        for conv in ["conv1", "conv2"] {
            self.linear(&format!("{e}.{conv}"), &format!("encoder/{conv}"))?;
        }
        self.copy(
            &format!("{e}.embed_positions.weight"),
            "encoder/position_encodings/encodings",
        )?;
        self.layer_norm(&format!("{e}.layer_norm"), "encoder/layer_norm")?;
        let n_enc = self.count_layers("encoder");
        let n_dec = self.count_layers("decoder");
        if n_enc == 0 || n_dec == 0 {
            return Err(ModelError::corrupt(
                self.path,
                "has no encoder or decoder layers",
            ));
        }
        for i in 0..n_enc {
            let (hf, ct) = (format!("{e}.layers.{i}"), format!("encoder/layer_{i}"));
            self.self_attention(&hf, &ct)?;
            self.ffn(&hf, &ct)?;
        }
        self.copy(
            &format!("{d}.embed_tokens.weight"),
            "decoder/embeddings/weight",
        )?;
        self.copy(
            &format!("{d}.embed_positions.weight"),
            "decoder/position_encodings/encodings",
        )?;
        self.layer_norm(&format!("{d}.layer_norm"), "decoder/layer_norm")?;
        for i in 0..n_dec {
            let (hf, ct) = (format!("{d}.layers.{i}"), format!("decoder/layer_{i}"));
            self.self_attention(&hf, &ct)?;
            self.linear(
                &format!("{hf}.encoder_attn.q_proj"),
                &format!("{ct}/attention/linear_0"),
            )?;
            let (k, v) = (
                format!("{hf}.encoder_attn.k_proj"),
                format!("{hf}.encoder_attn.v_proj"),
            );
            self.split(
                &format!("{ct}/attention/linear_1"),
                &[(&k, false), (&v, true)],
            )?;
            self.linear(
                &format!("{hf}.encoder_attn.out_proj"),
                &format!("{ct}/attention/linear_2"),
            )?;
            self.layer_norm(
                &format!("{hf}.encoder_attn_layer_norm"),
                &format!("{ct}/attention/layer_norm"),
            )?;
            self.ffn(&hf, &ct)?;
        }
        let encoder_heads = self.scalar("encoder/num_heads")? as usize;
        let decoder_heads = self.scalar("decoder/num_heads")? as usize;
        Ok(Ct2Whisper {
            tensors: self.out,
            encoder_heads,
            decoder_heads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn tiny_bin() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        put_str(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "a/weight");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&half::f16::from_f32(1.5).to_le_bytes());
        b.extend_from_slice(&half::f16::from_f32(-2.0).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "b/weight");
        put_str(&mut b, "a/weight");
        b
    }

    #[test]
    fn parses_variables_and_aliases() {
        let bin = parse(&tiny_bin()).unwrap();
        assert_eq!(bin.spec, "WhisperSpec");
        let a = &bin.variables["a/weight"];
        assert_eq!(a.shape, vec![2, 1]);
        assert_eq!(a.to_f32().unwrap(), vec![1.5, -2.0]);
        assert_eq!(bin.variables["b/weight"].to_f32().unwrap(), vec![1.5, -2.0]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = tiny_bin();
        // header 26 bytes + one variable of 29 bytes; the alias table after it is optional.
        let aliases_at = 26 + 29;
        assert_eq!(full.len(), aliases_at + 4 + 11 + 11);
        for cut in 0..full.len() {
            assert_eq!(
                parse(&full[..cut]).is_ok(),
                cut == aliases_at,
                "cut at {cut}"
            );
        }
        assert!(parse(b"hello world, not a model").is_err());
        let mut wrong_version = tiny_bin();
        wrong_version[0] = 5;
        assert!(parse(&wrong_version)
            .err()
            .unwrap()
            .to_string()
            .contains("version 5"));
    }

    #[test]
    fn lying_byte_count_is_caught() {
        let mut b = tiny_bin();
        // nbytes field of the only variable sits after name(2+9) ndim(1) dims(8) dtype(1).
        let off = 26 + 11 + 1 + 8 + 1;
        b[off] = 6;
        assert!(parse(&b)
            .err()
            .unwrap()
            .to_string()
            .contains("claims 6 bytes"));
    }
}
