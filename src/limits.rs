//! The limits prunescope states and enforces on what it reads (README, "Limits"; docs/SPEC.md
//! section 11). Each is checked before anything of that size is allocated, and past each the
//! reader gives one error naming the limit. The remote protocol's frame limit lives with the
//! frames ([`crate::remote::frame::MAX_FRAME`]).

use std::io::Read;
use std::path::Path;

/// The longest clip accepted, in seconds (4 hours). A header that declares a longer stream is
/// refused before any sample is decoded; a stream that does not declare its length is refused
/// once it passes this, so the samples held never exceed it.
pub const MAX_CLIP_SECONDS: u64 = 4 * 3600;

/// The largest analysis document or workspace opened (eval results files are read line by
/// line, whatever their size). A 10-minute clip's workspace with words and every layer's scores
/// is about 31 MB.
pub const MAX_DOCUMENT: u64 = 2 << 30;

/// The largest JSON file of a model directory read (`config.json`, `tokenizer.json`, the shard
/// index, the generation and preprocessor configs). The largest real tokenizers are a few tens of
/// MB.
pub const MAX_MODEL_JSON: u64 = 128 << 20;

/// The largest safetensors header (the JSON table of tensors at the start of each file), the
/// limit the format's reference reader applies too.
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// What [`read_at_most`] found.
#[derive(Debug)]
pub enum Capped {
    Read(Vec<u8>),
    /// The file holds more than the limit (at least this many bytes).
    TooLarge(u64),
}

/// Reads the file at `path` when it holds at most `max` bytes. The size the file system reports
/// is checked first (nothing is read past the limit), and the read itself stops one byte past
/// it, so a file that grows, a pipe or a device cannot make it read more.
pub fn read_at_most(path: &Path, max: u64) -> std::io::Result<Capped> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Capped::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Capped::TooLarge(bytes.len() as u64));
    }
    Ok(Capped::Read(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::TempDir;

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_not() {
        let dir = TempDir::new("limits").unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 1000]).unwrap();
        assert!(matches!(read_at_most(&p, 1000).unwrap(), Capped::Read(b) if b.len() == 1000));
        assert!(matches!(
            read_at_most(&p, 999).unwrap(),
            Capped::TooLarge(1000)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_device_with_no_size_is_read_only_up_to_the_limit() {
        // /dev/zero reports 0 bytes and never ends.
        assert!(matches!(
            read_at_most(Path::new("/dev/zero"), 4096).unwrap(),
            Capped::TooLarge(4097)
        ));
    }
}
