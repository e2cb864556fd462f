//! What the file-fed targets share: a scratch file of this process, rewritten each run.

use std::path::PathBuf;

/// Writes `data` to this process's scratch file named `name` and returns its path.
pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prunescope-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(name);
    std::fs::write(&p, data).expect("the scratch folder is writable");
    p
}
