//! Hub ids (`Qwen/Qwen2-Audio-7B-Instruct`) resolved from the local Hugging Face cache, as
//! users already have it from transformers or `huggingface-cli download`:
//! `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//! `~/.cache/huggingface/hub`; inside it `models--ORG--NAME/snapshots/<revision>`, the revision
//! named by `refs/main` (or the only snapshot).

use std::path::{Path, PathBuf};

use super::{ModelError, Result};

/// `org/name` with the characters hub ids allow, and no path-like parts.
pub fn looks_like_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(org) && ok(name)
}

/// The hub cache folder this process would use.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("HF_HUB_CACHE")
        .or_else(|| env("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/huggingface/hub")))
}

/// The snapshot directory of `id` in the default cache.
pub fn resolve(id: &str) -> Result<PathBuf> {
    let cache = cache_dir().ok_or_else(|| ModelError::Config {
        path: PathBuf::from(id),
        msg: "no Hugging Face cache folder (set HF_HOME or HF_HUB_CACHE)".into(),
    })?;
    resolve_in(&cache, id)
}

/// The snapshot directory of `id` in the cache folder `cache`.
pub fn resolve_in(cache: &Path, id: &str) -> Result<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let missing = || {
        ModelError::Config {
        path: PathBuf::from(id),
        msg: format!(
            "is neither a directory nor in the Hugging Face cache {} (download it with `huggingface-cli download {id}`, or pass its directory)",
            cache.display()
        ),
    }
    };
    if !repo.is_dir() {
        return Err(missing());
    }
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match found.len() {
        0 => Err(missing()),
        1 => Ok(found.remove(0)),
        n => Err(ModelError::Config {
            path: snapshots,
            msg: format!(
                "holds {n} snapshots of {id} and no refs/main: pass the directory you want"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(looks_like_id("Qwen/Qwen2-Audio-7B-Instruct"));
        assert!(looks_like_id("nvidia/audio-flamingo-3-hf"));
        for not in [
            "models/whisper",
            "./a/b",
            "a",
            "a/b/c",
            "/abs/path",
            "a/",
            "../x",
            "a b/c",
        ] {
            // "models/whisper" is id-shaped; the caller only asks when no such path exists.
            if not != "models/whisper" {
                assert!(!looks_like_id(not), "{not}");
            }
        }
    }

    #[test]
    fn cache_layout() {
        let root = std::env::temp_dir().join(format!("prunescope-hub-{}", std::process::id()));
        let repo = root.join("models--Qwen--Qwen2-Audio-7B-Instruct");
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        // One snapshot, no refs: that one.
        assert_eq!(
            resolve_in(&root, "Qwen/Qwen2-Audio-7B-Instruct").unwrap(),
            snap
        );
        // Two snapshots: refs/main decides.
        let other = repo.join("snapshots/def456");
        std::fs::create_dir_all(&other).unwrap();
        let e = resolve_in(&root, "Qwen/Qwen2-Audio-7B-Instruct").unwrap_err();
        assert!(e.to_string().contains("2 snapshots"), "{e}");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "def456\n").unwrap();
        assert_eq!(
            resolve_in(&root, "Qwen/Qwen2-Audio-7B-Instruct").unwrap(),
            other
        );
        let e = resolve_in(&root, "nvidia/audio-flamingo-3-hf").unwrap_err();
        assert!(
            e.to_string()
                .contains("huggingface-cli download nvidia/audio-flamingo-3-hf"),
            "{e}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
