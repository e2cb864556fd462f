//! Memory-mapped safetensors shards, read tensor by tensor straight onto the target device in
//! the target dtype: a 7B model in bf16 never has a second copy of its weights, on the GPU or on
//! the CPU. Once a tensor is copied out of the mapping, its pages are handed back (`madvise`), so
//! the mapped file does not stay resident beside the copy while the rest loads; in f32 each
//! tensor is widened from the mapping once.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::model::nn::TensorSource;
use crate::model::{hf, ModelError, Result};

/// The published name layouts: the hub's (`audio_tower.*`, `language_model.model.*`,
/// `language_model.lm_head.weight`) and transformers 5's (`model.audio_tower.*`,
/// `model.language_model.*`, `lm_head.weight`).
const LAYOUTS: [[&str; 4]; 2] = [
    [
        "audio_tower.",
        "multi_modal_projector.",
        "language_model.model.",
        "language_model.lm_head.",
    ],
    [
        "model.audio_tower.",
        "model.multi_modal_projector.",
        "model.language_model.",
        "lm_head.",
    ],
];

/// Which part of the model a tensor belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Encoder = 0,
    Projector = 1,
    Lm = 2,
    LmHead = 3,
}

pub struct AlmWeights {
    st: MmapedSafetensors,
    dir: PathBuf,
    layout: usize,
    pub device: Device,
    pub dtype: DType,
}

impl AlmWeights {
    pub fn open(dir: &Path, device: &Device, dtype: DType) -> Result<AlmWeights> {
        let files = hf::safetensors_files(dir)?;
        // SAFETY: the mapping is read-only and lives as long as the weights; like every
        // safetensors reader we rely on the files not being rewritten while the model runs.
        let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| {
            ModelError::corrupt(dir, format!("cannot read the safetensors files: {e}"))
        })?;
        let layout = LAYOUTS
            .iter()
            .position(|l| st.get(&format!("{}conv1.weight", l[0])).is_ok())
            .ok_or_else(|| {
                ModelError::corrupt(
                    dir,
                    "has no `audio_tower.conv1.weight` (nor `model.audio_tower.conv1.weight`): not a Qwen2-Audio / Audio Flamingo 3 checkpoint",
                )
            })?;
        Ok(AlmWeights {
            st,
            dir: dir.to_path_buf(),
            layout,
            device: device.clone(),
            dtype,
        })
    }

    pub fn full_name(&self, part: Part, name: &str) -> String {
        format!("{}{name}", LAYOUTS[self.layout][part as usize])
    }

    pub fn has(&self, part: Part, name: &str) -> bool {
        self.st.get(&self.full_name(part, name)).is_ok()
    }

    /// The tensor `name` of `part`, which must have exactly `shape`, on the device in the
    /// model's dtype.
    pub fn get(&self, part: Part, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full_name(part, name);
        let view = self
            .st
            .get(&full)
            .map_err(|_| ModelError::MissingTensor(full.clone()))?;
        if view.shape() != shape {
            return Err(ModelError::Shape {
                name: full,
                got: view.shape().to_vec(),
                want: shape.to_vec(),
            });
        }
        let t = self
            .st
            .load(&full, &self.device)
            .map_err(|e| ModelError::corrupt(&self.dir, format!("tensor `{full}`: {e}")))?;
        release_pages(view.data());
        Ok(t.to_dtype(self.dtype)?)
    }

    /// One part of the checkpoint, as a [`TensorSource`].
    pub fn part(&self, part: Part) -> PartOf<'_> {
        PartOf(self, part)
    }
}

/// Tells the kernel that the mapped pages under `data` are no longer needed: they leave this
/// process's resident set (a later read faults them in again from the file, unchanged). Pages
/// shared with a neighbouring tensor go too and come back on demand.
#[cfg(unix)]
fn release_pages(data: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if data.is_empty() || page == 0 {
        return;
    }
    let start = data.as_ptr() as usize / page * page;
    let end = data.as_ptr() as usize + data.len();
    // SAFETY: the range lies within the read-only file mapping that `data` borrows from (rounded
    // down to its page); MADV_DONTNEED on a file mapping only drops resident pages, and their
    // contents stay those of the file.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

#[cfg(not(unix))]
fn release_pages(_data: &[u8]) {}

/// The tensors of one part of a checkpoint (names relative to the part).
pub struct PartOf<'a>(&'a AlmWeights, Part);

impl TensorSource for PartOf<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.0.get(self.1, name, shape)
    }
}
