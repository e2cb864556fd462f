//! Golden test: our log-mel of jfk.wav against Hugging Face's WhisperFeatureExtractor.

use std::path::{Path, PathBuf};

use prunescope::audio;
use prunescope::mel::MelExtractor;
use prunescope::WINDOW_FRAMES;

/// A reference under tests/data.
fn golden(name: &str) -> PathBuf {
    crate::common::root().join("tests/data").join(name)
}

/// A 2-D little-endian f32 C-order .npy file: (shape, data).
fn read_npy_f32_2d(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an npy file");
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => panic!("npy version {v}"),
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(shape.len(), 2, "{header}");
    let data: Vec<f32> = bytes[header_start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape[0] * shape[1]);
    (shape, data)
}

fn jfk() -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/jfk.wav");
    let audio = audio::load(&path).unwrap();
    assert_eq!(audio.source_rate, 16_000);
    assert_eq!(audio.samples.len(), 176_000);
    audio.samples.to_vec()
}

fn check_golden(n_mels: usize, file: &str) {
    let (shape, expected) = read_npy_f32_2d(&golden(file));
    assert_eq!(shape, vec![n_mels, WINDOW_FRAMES]);
    let mel = MelExtractor::new(n_mels);
    assert_eq!(mel.n_mels(), n_mels);
    let got = mel.compute(&jfk());
    assert_eq!(got.len(), expected.len());
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let err = (g - e).abs();
        if err > worst || err.is_nan() {
            worst = err;
            at = i;
        }
    }
    println!(
        "{file}: max abs error {worst:e} at mel {} frame {}",
        at / WINDOW_FRAMES,
        at % WINDOW_FRAMES
    );
    assert!(
        worst < 1e-4,
        "{file}: max abs error {worst} at mel {} frame {}",
        at / WINDOW_FRAMES,
        at % WINDOW_FRAMES
    );
}

#[test]
fn jfk_mel80_matches_transformers() {
    check_golden(80, "jfk.mel80.npy");
}

#[test]
fn jfk_mel128_matches_transformers() {
    check_golden(128, "jfk.mel128.npy");
}

/// A window longer than 30 s is cut: only its first 480000 samples count.
#[test]
fn long_input_is_cut_to_one_window() {
    let mel = MelExtractor::new(80);
    let mut long = vec![0.0f32; 600_000];
    for (i, s) in long.iter_mut().enumerate() {
        *s = ((i as f32) * 0.05).sin() * 0.1;
    }
    let cut = mel.compute(&long[..480_000]);
    assert_eq!(mel.compute(&long), cut);
}
