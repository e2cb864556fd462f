//! Shared test helpers: the default model (loaded once), test data paths.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prunescope::engine::{self, RunMethod, RunSpec};
use prunescope::model::whisper::Whisper;
use prunescope::prune::Params;
use prunescope::scores::Layers;

#[cfg(feature = "gui")]
pub mod gui;

/// The command line of `prunescope serve --stdio` with the fake model (each decoding step
/// `step_ms`). With `pid`, the server's process id is written there (to kill it mid-run): a
/// background job's stdin is /dev/null unless it is given another, hence the `3<&0`.
pub fn served_fake(step_ms: u64, pid: Option<&Path>) -> String {
    let bin = env!("CARGO_BIN_EXE_prunescope");
    match pid {
        None => format!("'{bin}' serve --stdio --fake-model {step_ms}"),
        Some(pid) => format!(
            "exec 3<&0; '{bin}' serve --stdio --fake-model {step_ms} <&3 & echo $! > '{}'; wait $!",
            pid.display()
        ),
    }
}

/// The `prunescope` binary with the default model.
pub fn command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_prunescope"));
    c.env("PRUNESCOPE_MODEL", model_dir());
    c
}

/// Runs a command; whatever it does, it must not panic.
pub fn output(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// Runs the `prunescope` binary with the default model.
pub fn prunescope(args: &[&str]) -> std::process::Output {
    output(command().args(args))
}

/// Runs the binary, which must succeed; its stdout and stderr.
pub fn ok(args: &[&str]) -> (String, String) {
    let out = prunescope(args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?} failed: {e}");
    (o, e)
}

/// Runs the binary, which must succeed, and parses its stdout as one JSON document.
pub fn json_doc(args: &[&str]) -> serde_json::Value {
    let (stdout, _) = ok(args);
    serde_json::from_str(&stdout).expect("one JSON document")
}

/// A JSON array of numbers, as f32.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Fails unless the command failed with exactly one `error:` line mentioning `needle`
/// (case-insensitive), and no panic.
pub fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "`{needle}` not in: {stderr}"
    );
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A toy Qwen2-Audio / AF3 golden file's clip (tests/data/alm): `n_samples` of jfk.wav from
/// `offset_samples`.
pub fn toy_golden_audio(g: &serde_json::Value) -> prunescope::audio::Audio {
    let jfk = prunescope::audio::load(&root().join("assets/jfk.wav")).unwrap();
    let off = g["offset_samples"].as_u64().unwrap() as usize;
    let n = g["n_samples"].as_u64().unwrap() as usize;
    prunescope::audio::Audio::from_samples(jfk.samples[off..off + n].to_vec(), 16_000).unwrap()
}

/// A toy model of tests/data/alm in f32 on the CPU, decoding the golden files' 12 tokens.
pub fn toy_alm(name: &str) -> prunescope::model::alm::Alm {
    toy_alm_in(name, candle_core::DType::F32)
}

/// [`toy_alm`] on the CPU in `dtype` (f32 runs on our CPU encoder, the others on candle's ops).
pub fn toy_alm_in(name: &str, dtype: candle_core::DType) -> prunescope::model::alm::Alm {
    let mut model = prunescope::model::alm::Alm::load(
        &root().join("tests/data/alm").join(name),
        &candle_core::Device::Cpu,
        dtype,
    )
    .unwrap();
    model.options.max_new_tokens = 12;
    model
}

/// A test clip: tests/data first, then assets/.
pub fn data(name: &str) -> PathBuf {
    let p = root().join("tests/data").join(name);
    if p.exists() {
        p
    } else {
        root().join("assets").join(name)
    }
}

/// The default model's folder (the user cache folder, or `$PRUNESCOPE_MODEL`).
pub fn model_dir() -> PathBuf {
    prunescope::model::default_dir()
        .expect("the default model is missing: run `cargo run -- fetch` (scripts/test does it)")
}

/// The default model, loaded once per test binary.
pub fn model() -> &'static Whisper {
    static MODEL: OnceLock<Whisper> = OnceLock::new();
    MODEL.get_or_init(|| Whisper::load(&model_dir()).expect("default model loads"))
}

/// target -> tokens that joined it, for a merging method's selection of a clip.
pub fn merged_groups(
    model: &Whisper,
    audio: &prunescope::audio::Audio,
    method: &str,
    keep: f64,
) -> BTreeMap<usize, BTreeSet<usize>> {
    let clip = engine::encode(model, audio, Layers::Last, &mut |_| {}).unwrap();
    let spec = RunSpec {
        method: RunMethod::parse(method).unwrap(),
        keep,
    };
    let sel = engine::select(&clip, &spec, &Params::default())
        .unwrap()
        .unwrap();
    sel.merged
        .iter()
        .map(|c| {
            let joined: BTreeSet<usize> = c
                .parts
                .iter()
                .map(|&(j, _)| j)
                .filter(|&j| j != c.target)
                .collect();
            (c.target, joined)
        })
        .filter(|(_, j)| !j.is_empty())
        .collect()
}

/// A mismatch message `"... ours \"A\" vs reference \"B\""` where both texts share a long prefix
/// and the reference has already fallen into a repetition loop by the point they part.
pub fn is_late_repetition_flip(msg: &str) -> bool {
    let Some((a, b)) = msg.split_once(" vs reference ") else {
        return false;
    };
    let a = a.split_once("ours ").map(|x| x.1).unwrap_or(a);
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let prefix: String = b.chars().take(common).collect();
    let words: Vec<&str> = prefix.split_whitespace().collect();
    if words.len() < 12 {
        return false;
    }
    // Repetition: the last 12 words of the shared prefix use at most 4 distinct words.
    let tail: BTreeSet<&str> = words[words.len() - 12..].iter().copied().collect();
    tail.len() <= 4
}

/// A fresh, empty folder (the library's [`prunescope::util::TempDir`]), removed when dropped;
/// `.0` is its path.
pub struct TempDir(pub PathBuf, prunescope::util::TempDir);

impl TempDir {
    pub fn new() -> Self {
        let t = prunescope::util::TempDir::new("test").expect("temporary folder");
        TempDir(t.path().to_path_buf(), t)
    }

    /// Write `bytes` to `name` in the folder.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        self.1.file(name, bytes).expect("write a test file")
    }
}

/// A RIFF/WAVE file. `format` 1 is integer PCM, 3 is IEEE float. `declared_len` overrides the
/// data chunk's size field (to make a header that promises more than the file holds).
pub fn wav_bytes(
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    payload: &[u8],
    declared_len: Option<u32>,
) -> Vec<u8> {
    let data_len = declared_len.unwrap_or(payload.len() as u32);
    let block_align = channels * bits / 8;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    v.extend_from_slice(&block_align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

pub fn float32(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A JSON document without what is measured (times: `*_ms`, `decode_ms_per_token`), which
/// differ from run to run, and whose long floats may read back one unit in the last place off.
pub fn untimed(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_ms") && k != "decode_ms_per_token");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}
