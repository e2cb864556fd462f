//! The protocol's framing (docs/SPEC.md section 9): each side's stream starts with the 8-byte
//! [`MAGIC`], then carries frames of a 4-byte little-endian length and that many bytes of
//! MessagePack. A length over [`MAX_FRAME`] (or 0) is refused before anything is allocated,
//! and a frame's buffer grows only as its bytes arrive, so a peer that claims a large frame
//! and sends little costs little. Inside a frame, every string, byte string and array length is
//! bounded by the frame's own bytes (the decoder reads from the frame's slice, and serde caps
//! what it reserves for a claimed count).

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first bytes of each side's stream: a high-bit byte, the name, CR LF, ^Z, LF (as PNG's
/// signature: text that was never meant for us fails on its first byte, and a link that
/// rewrites line ends fails here).
pub const MAGIC: [u8; 8] = *b"\x89PSC\r\n\x1a\n";

/// The largest frame either side accepts: 512 MiB (a clip's file travels in one frame).
pub const MAX_FRAME: u64 = 512 << 20;

/// What reading or writing a frame can hit.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended at a frame boundary.
    #[error("end of stream")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The stream does not start with [`MAGIC`]: what it starts with, as text.
    #[error("not the protocol: `{0}`")]
    NotProtocol(String),
    #[error("a frame of {len} bytes, over the limit of {max}", max = MAX_FRAME)]
    TooLarge { len: u64 },
    #[error("{0}")]
    Malformed(String),
}

impl FrameError {
    /// What it means for the link: the error a client or server reports.
    pub fn into_link(self) -> crate::engine::LinkError {
        use crate::engine::LinkError;
        match self {
            FrameError::Eof => LinkError::Closed {
                status: None,
                stderr: None,
            },
            FrameError::Io(e) => LinkError::Io {
                reason: e.to_string(),
                stderr: None,
            },
            FrameError::NotProtocol(start) => LinkError::NotProtocol {
                start,
                stderr: None,
            },
            FrameError::TooLarge { len } => LinkError::FrameTooLarge {
                len,
                max: MAX_FRAME,
            },
            FrameError::Malformed(detail) => LinkError::Malformed { detail },
        }
    }
}

/// Writes [`MAGIC`].
pub fn write_magic(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&MAGIC)?;
    w.flush()
}

/// Reads [`MAGIC`]. On a mismatch, reads on to the end of the line (at most 80 bytes, or the
/// end of the stream) to say what the peer wrote instead.
pub fn read_magic(r: &mut impl Read) -> Result<(), FrameError> {
    let mut got = Vec::with_capacity(MAGIC.len());
    let mut byte = [0u8; 1];
    while got.len() < MAGIC.len() {
        match r.read(&mut byte) {
            Ok(0) if got.is_empty() => return Err(FrameError::Eof),
            Ok(0) => return Err(FrameError::NotProtocol(printable(&got))),
            Ok(_) => got.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        if got[..] != MAGIC[..got.len()] {
            while got.len() < 80 && got.last() != Some(&b'\n') {
                match r.read(&mut byte) {
                    Ok(1) => got.push(byte[0]),
                    _ => break,
                }
            }
            return Err(FrameError::NotProtocol(printable(&got)));
        }
    }
    Ok(())
}

/// Bytes as one line of text: invalid UTF-8 and control characters shown escaped.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Writes one frame; returns the bytes written.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<u64, FrameError> {
    let body = rmp_serde::to_vec_named(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = body.len() as u64;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    w.write_all(&(len as u32).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()?;
    Ok(len + 4)
}

/// Reads one frame; returns the message and the bytes read.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<(T, u64), FrameError> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match r.read(&mut head[filled..]) {
            Ok(0) if filled == 0 => return Err(FrameError::Eof),
            Ok(0) => {
                return Err(FrameError::Malformed(
                    "the stream ended inside a frame's length".into(),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let len = u64::from(u32::from_le_bytes(head));
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge { len });
    }
    if len == 0 {
        return Err(FrameError::Malformed("an empty frame".into()));
    }
    // Grows as the bytes arrive: a claimed length costs nothing until it is sent.
    let mut body = Vec::new();
    r.take(len).read_to_end(&mut body)?;
    if (body.len() as u64) < len {
        return Err(FrameError::Malformed(format!(
            "the stream ended after {} of a frame's {len} bytes",
            body.len()
        )));
    }
    let msg = rmp_serde::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok((msg, len + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_count_their_bytes() {
        let mut buf = Vec::new();
        write_magic(&mut buf).unwrap();
        let n = write_frame(&mut buf, &("hello", vec![1.5f32, -2.0])).unwrap();
        assert_eq!(n as usize, buf.len() - MAGIC.len());
        let mut r = &buf[..];
        read_magic(&mut r).unwrap();
        let (msg, read): ((String, Vec<f32>), u64) = read_frame(&mut r).unwrap();
        assert_eq!(msg, ("hello".to_string(), vec![1.5, -2.0]));
        assert_eq!(read, n);
        assert!(matches!(read_frame::<String>(&mut r), Err(FrameError::Eof)));
    }

    #[test]
    fn text_instead_of_the_protocol_is_named() {
        let mut r = &b"Last login: Mon Dec  7 from 10.0.0.1\nWelcome\n"[..];
        match read_magic(&mut r) {
            Err(FrameError::NotProtocol(s)) => {
                assert_eq!(s, "Last login: Mon Dec  7 from 10.0.0.1")
            }
            other => panic!("{other:?}"),
        }
        let mut r = &b"\x89PSC\r\nX"[..];
        assert!(matches!(
            read_magic(&mut r),
            Err(FrameError::NotProtocol(s)) if s.ends_with('X')
        ));
        let mut empty = &b""[..];
        assert!(matches!(read_magic(&mut empty), Err(FrameError::Eof)));
    }

    #[test]
    fn a_frame_claiming_a_gigabyte_is_refused_before_it_is_read() {
        let mut buf = (1u32 << 30).to_le_bytes().to_vec();
        buf.extend_from_slice(b"only a few bytes");
        let mut r = &buf[..];
        assert!(matches!(
            read_frame::<String>(&mut r),
            Err(FrameError::TooLarge { len }) if len == 1 << 30
        ));
    }

    #[test]
    fn the_frame_limit_holds_at_its_edge() {
        // Exactly the limit is a length a peer may send (here it then sends nothing); one
        // byte more is refused unread.
        let at = (MAX_FRAME as u32).to_le_bytes();
        assert!(matches!(
            read_frame::<String>(&mut &at[..]),
            Err(FrameError::Malformed(m)) if m.contains("after 0 of a frame's 536870912 bytes")
        ));
        let past = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert!(matches!(
            read_frame::<String>(&mut &past[..]),
            Err(FrameError::TooLarge { len }) if len == MAX_FRAME + 1
        ));
    }

    #[test]
    fn short_empty_and_garbage_frames_are_malformed() {
        // Claims 100 bytes, sends 3.
        let mut buf = 100u32.to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        assert!(matches!(
            read_frame::<String>(&mut &buf[..]),
            Err(FrameError::Malformed(_))
        ));
        let zero = 0u32.to_le_bytes();
        assert!(matches!(
            read_frame::<String>(&mut &zero[..]),
            Err(FrameError::Malformed(_))
        ));
        let mut garbage = 5u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37]);
        assert!(matches!(
            read_frame::<Vec<String>>(&mut &garbage[..]),
            Err(FrameError::Malformed(_))
        ));
        // An array that claims four billion strings in a frame of 5 bytes: refused without
        // reserving room for them.
        let mut huge = 5u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read_frame::<Vec<String>>(&mut &huge[..]),
            Err(FrameError::Malformed(_))
        ));
    }
}
