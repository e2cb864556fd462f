//! A model folder with one file replaced by the input (the first byte says which):
//! `config.json`, `tokenizer.json`, the safetensors shard index, or a shard (its header and
//! tensors). The rest is the toy Audio Flamingo 3 of tests/data. Every input loads or is one
//! `ModelError`.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

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
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/alm/af3-tiny");
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

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = toy();
    let name = FILES[usize::from(pick) % FILES.len()];
    let original = std::fs::read(dir.join(name)).expect("the toy's file");
    std::fs::write(dir.join(name), bytes).expect("written");
    let _ = prunescope::model::load(dir, &prunescope::model::LoadOptions::default());
    std::fs::write(dir.join(name), original).expect("restored");
});
