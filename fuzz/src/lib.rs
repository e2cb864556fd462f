//! The bodies of the fuzz targets (`fuzz_targets/*.rs` are one line each around them), so the
//! test suite replays every committed seed and finding through the same code
//! (`tests/suite/fuzz_corpus.rs`) without the instrumented build. Each takes any bytes: every
//! input is a value or an error; a panic, an overflow or an allocation past a stated limit is a
//! finding.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prunescope::document::{self, Opened};
use prunescope::eval::datasets::{load, DatasetKind};
use prunescope::remote::frame;
use prunescope::remote::protocol::{Hello, ToClient, ToServer};

/// A target's body: any bytes in.
pub type Body = fn(&[u8]);

/// The targets, by name (the binaries in `fuzz_targets/`, the folders of `corpus/`).
pub const TARGETS: &[(&str, Body)] = &[
    ("frame", frame),
    ("audio", audio),
    ("ct2", ct2),
    ("documents", documents),
    ("datasets", datasets),
    ("model_files", model_files),
    ("whisper_files", whisper_files),
];

/// The repository's root (this crate is its `fuzz/` folder; the suite includes this file from
/// the root crate).
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("fuzz_targets").is_dir() {
        here.parent().expect("fuzz/ has a parent").to_path_buf()
    } else {
        here.to_path_buf()
    }
}

/// Writes `data` to this process's scratch file named `name` and returns its path.
fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prunescope-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(name);
    std::fs::write(&p, data).expect("the scratch folder is writable");
    p
}

/// The remote protocol as the client and the server read it: the magic, then frames of any
/// message either side sends.
pub fn frame(data: &[u8]) {
    let mut r = data;
    if frame::read_magic(&mut r).is_err() {
        return;
    }
    let _ = frame::read_frame::<Hello>(&mut r);
    for _ in 0..4 {
        let mut a = r;
        let _ = frame::read_frame::<ToServer>(&mut a);
        let mut b = r;
        if frame::read_frame::<ToClient>(&mut b).is_err() {
            break;
        }
        r = b;
    }
}

/// The audio front end: WAV, FLAC, MP3, Ogg/Vorbis, M4A/AAC (our edit-list reading included),
/// the format from the content, the first byte choosing the name's extension (a hint only).
pub fn audio(data: &[u8]) {
    const NAMES: [&str; 6] = ["x.wav", "x.flac", "x.mp3", "x.ogg", "x.m4a", "x.bin"];
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let _ = prunescope::audio::load_bytes(bytes.to_vec(), Path::new(name));
}

/// The CTranslate2 `model.bin` reader: header, variables, aliases, and each variable's values
/// as f32.
pub fn ct2(data: &[u8]) {
    if let Ok(m) = prunescope::model::ct2::parse(data) {
        for v in m.variables.values() {
            let _ = v.to_f32();
        }
    }
}

/// The eval datasets' own files (ASR manifests in CSV and JSONL, Clotho, AudioCaps, ClothoAQA
/// CSVs, the MMAU JSON), the first byte choosing which, and eval results files.
pub fn datasets(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let (kind, name) = match pick % 7 {
        0 => ("asr", "manifest.csv"),
        1 => ("asr", "manifest.jsonl"),
        2 => ("clotho", "clotho_captions_evaluation.csv"),
        3 => ("audiocaps", "test.csv"),
        4 => ("clothoaqa", "clotho_aqa_test.csv"),
        5 => ("mmau", "mmau-test-mini.json"),
        _ => {
            let p = scratch("results.jsonl", bytes);
            let _ = prunescope::eval::runner::read_results(&p);
            return;
        }
    };
    let p = scratch(name, bytes);
    let _ = load(DatasetKind::parse(kind).expect("a known kind"), &p);
}

/// What `prunescope open` reads: analyses, workspaces (with their embedded clip) and eval
/// results files, told apart by their content; and a document's clip located.
pub fn documents(data: &[u8]) {
    let p = scratch("doc.json", data);
    match document::open(&p) {
        Ok(Opened::Workspace(w)) => {
            let embedded = w.embedded_clip(&p).ok().flatten();
            let _ = document::locate_clip(&p, &w.clip.path, Some(&w.clip.sha256), embedded);
        }
        Ok(Opened::Run(r)) => {
            for rec in &r.records {
                let _ = rec.analysis(&r.header);
            }
        }
        _ => {}
    }
}

/// A model folder with one file replaced by the input (the first byte says which):
/// `config.json`, `tokenizer.json`, the safetensors shard index, or a shard (its header and
/// tensors). The rest is the toy Audio Flamingo 3 of tests/data.
pub fn model_files(data: &[u8]) {
    const FILES: [&str; 4] = [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
    ];
    /// A copy of the toy model, made once per process.
    fn toy() -> &'static PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let src = root().join("tests/data/alm/af3-tiny");
            let dir =
                std::env::temp_dir().join(format!("prunescope-fuzz-model-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            for e in std::fs::read_dir(&src).expect("tests/data/alm/af3-tiny") {
                let e = e.expect("a file");
                std::fs::copy(e.path(), dir.join(e.file_name())).expect("copied");
            }
            dir
        })
    }
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = toy();
    let name = FILES[usize::from(pick) % FILES.len()];
    let original = std::fs::read(dir.join(name)).expect("the toy's file");
    std::fs::write(dir.join(name), bytes).expect("written");
    let _ = prunescope::model::load(dir, &prunescope::model::LoadOptions::default());
    std::fs::write(dir.join(name), original).expect("restored");
}

/// A Whisper folder in Hugging Face format with one file replaced by the input (the first byte
/// says which): its `config.json`, its `generation_config.json` (suppress lists, alignment
/// heads) or its `model.safetensors`. The rest is a small valid config, a tokenizer and an
/// empty weights file, so the config readers run to the end before the weights are missed.
pub fn whisper_files(data: &[u8]) {
    const FILES: [&str; 3] = ["config.json", "generation_config.json", "model.safetensors"];
    const CONFIG: &str = r#"{"d_model": 8, "num_mel_bins": 80, "encoder_layers": 1,
        "encoder_attention_heads": 2, "decoder_layers": 1, "decoder_attention_heads": 2,
        "max_source_positions": 1500, "max_target_positions": 448, "vocab_size": 51864}"#;
    const GENERATION: &str = r#"{"suppress_tokens": [1, 2], "begin_suppress_tokens": [220],
        "alignment_heads": [[0, 1]]}"#;
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("prunescope-fuzz-whisper-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let tokenizer = root().join("tests/data/alm/af3-tiny/tokenizer.json");
    if !dir.join("tokenizer.json").is_file() {
        std::fs::copy(tokenizer, dir.join("tokenizer.json")).expect("the toy's tokenizer");
    }
    // An empty safetensors file: a 2-byte header, `{}`.
    let mut empty = 2u64.to_le_bytes().to_vec();
    empty.extend_from_slice(b"{}");
    std::fs::write(dir.join("config.json"), CONFIG).expect("written");
    std::fs::write(dir.join("generation_config.json"), GENERATION).expect("written");
    std::fs::write(dir.join("model.safetensors"), &empty).expect("written");
    let name = FILES[usize::from(pick) % FILES.len()];
    std::fs::write(dir.join(name), bytes).expect("written");
    let _ = prunescope::model::load(&dir, &prunescope::model::LoadOptions::default());
}
