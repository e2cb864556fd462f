//! Small helpers every layer shares: the median of measurements, the cosine similarity of two
//! vectors, a self-removing temporary folder, and the parsing of a name that must be one of a
//! fixed set (with its error).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A name that is none of the known ones (`--device`, `--dataset`, ...): `unknown <what>
/// `<got>` (<hint>)`, the hint listing what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{got}` ({hint})")]
pub struct UnknownName {
    pub what: &'static str,
    pub got: String,
    pub hint: String,
}

impl UnknownName {
    /// The error for `got`, which is none of `names`: the hint reads `expected a, b or c`.
    pub fn expected(what: &'static str, got: &str, names: &[&str]) -> UnknownName {
        let hint = match names {
            [] => "expected nothing".to_string(),
            [one] => format!("expected {one}"),
            [rest @ .., last] => format!("expected {} or {last}", rest.join(", ")),
        };
        UnknownName {
            what,
            got: got.into(),
            hint,
        }
    }
}

/// The value `s` names in `table` (name, value); ASCII case and surrounding whitespace are
/// ignored, so `--dtype BF16 ` works. Several names may give one value (aliases): the error lists
/// only each value's first name.
pub fn parse_name<T: Copy + PartialEq>(
    what: &'static str,
    s: &str,
    table: &[(&str, T)],
) -> Result<T, UnknownName> {
    let wanted = s.trim();
    if let Some(&(_, value)) = table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
    {
        return Ok(value);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, (name, value)) in table.iter().enumerate() {
        if !table[..i].iter().any(|(_, v)| v == value) {
            names.push(name);
        }
    }
    Err(UnknownName::expected(what, wanted, &names))
}

/// The median (mean of the two middle values for an even count); NaN for no values.
/// Runs `f`, turning a panic in it into `Err(the panic's message)`, kept off stderr. For
/// libraries fed untrusted bytes that can panic on them (found by fuzzing, `fuzz/`: the
/// tokenizers library on some decoders, symphonia's WAV reader on an overflowing block size in
/// builds with overflow checks): the caller words the error like any other.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    thread_local! {
        static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    ran.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic with no message")
            .to_string()
    })
}

/// Caps glibc's malloc arenas at 2. glibc gives each thread that allocates its own arena, up
/// to 8 per core, and memory freed in one is never returned to another: the explorer's short
/// helper threads (file reading, remote links) made its resident memory grow without end over
/// a long session (the monkey in tests/abuse: 94 to 260 MB; with this cap, flat). Called once by
/// the explorer; elsewhere (and off glibc) it does nothing.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive value.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        });
    }
}

/// Writes `head` to `path` and extends the file to `len` bytes with a hole: a file of any size
/// past a limit that takes no disk (tests of the limits).
#[cfg(test)]
pub(crate) fn sparse_file(path: &Path, head: &[u8], len: u64) {
    std::fs::write(path, head).expect("a test file");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("a test file");
    f.set_len(len).expect("a sparse test file");
}

pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Cosine similarity of two vectors (f32 or f64), computed in f64: the dot product over the
/// square root of the product of the squared norms. 0 when that denominator is 0 (a zero
/// vector) or not finite.
pub fn cosine<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    let (mut d, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    let den = (na * nb).sqrt();
    if den > 0.0 && den.is_finite() {
        d / den
    } else {
        0.0
    }
}

/// A fresh, empty folder under the system's temporary folder, removed (with what it holds) when
/// dropped. Names are unique within and across processes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `prunescope-<tag>-<pid>-<n>` in the system's temporary folder.
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "prunescope-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` in the folder; returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, bytes)?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fruit {
        Apple,
        Pear,
    }

    const FRUITS: [(&str, Fruit); 3] = [
        ("apple", Fruit::Apple),
        ("malus", Fruit::Apple),
        ("pear", Fruit::Pear),
    ];

    #[test]
    fn names_parse_ignoring_case_and_space_aliases_included() {
        assert_eq!(parse_name("fruit", " Apple ", &FRUITS), Ok(Fruit::Apple));
        assert_eq!(parse_name("fruit", "MALUS", &FRUITS), Ok(Fruit::Apple));
        assert_eq!(parse_name("fruit", "pear", &FRUITS), Ok(Fruit::Pear));
    }

    #[test]
    fn an_unknown_name_lists_each_value_once() {
        let e = parse_name("fruit", " plum ", &FRUITS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown fruit `plum` (expected apple or pear)"
        );
        let e = UnknownName::expected("device", "tpu", &["cpu", "cuda", "cuda:N"]);
        assert_eq!(
            e.to_string(),
            "unknown device `tpu` (expected cpu, cuda or cuda:N)"
        );
        assert_eq!(
            UnknownName::expected("x", "y", &["z"]).hint,
            "expected z".to_string()
        );
    }

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine(&[0.0f32, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0f32, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0f32, 0.0], &[0.0, 3.0])).abs() < 1e-12);
        assert!((cosine(&[1.0f64, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[f64::MAX, 1.0], &[f64::MAX, 1.0]), 0.0);
    }

    #[test]
    fn temp_dirs_are_distinct_and_removed() {
        let a = TempDir::new("util").unwrap();
        let b = TempDir::new("util").unwrap();
        assert_ne!(a.path(), b.path());
        let f = a.file("x.txt", b"hi").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"hi");
        let p = a.path().to_path_buf();
        drop(a);
        assert!(!p.exists());
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014; the constants of Vigna's reference code): a 64-bit
/// counter stepped by the golden-ratio increment and passed through a fixed mixer. Our own, so
/// a seed names the same stream on every platform and crate version (the random pruning
/// baseline, the bootstrap intervals).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (Lemire's multiply-shift: biased below `n / 2^64`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A `Vec<f32>` as the little-endian bytes of its values (`#[serde(with = "f32_bytes")]`): a
/// binary codec writes 4 bytes a value instead of 5 (the remote model's encoder keys).
pub mod f32_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(format!(
                "{} bytes are not a whole number of f32 values",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}
