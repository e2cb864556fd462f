//! The edit list of an MP4/M4A audio track.
//!
//! AAC encoders prepend priming samples (1024 for ffmpeg, 2112 for Apple) and pad the last
//! frame; the container's edit list (`moov/trak/edts/elst`) says which decoded samples are the
//! clip. symphonia 0.6 parses that box but does not apply it, so an M4A would decode about 50 ms
//! late and long. This reads the box itself, bounded and without trusting any size field.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A `moov` box larger than this is not read (real ones are kilobytes to a few megabytes).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// The part of the decoded track that is the clip, from a single-edit edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edit {
    /// First sample of the clip, in media timescale units.
    pub media_time: u64,
    /// The track's media timescale (`mdhd`).
    pub media_timescale: u32,
    /// Duration of the clip in movie timescale units (0: to the end).
    pub segment_duration: u64,
    /// The movie timescale (`mvhd`).
    pub movie_timescale: u32,
}

impl Edit {
    /// The sample range of the clip in audio decoded at `rate` Hz, clamped to `len` samples.
    pub fn range(&self, rate: u32, len: usize) -> std::ops::Range<usize> {
        let scale = |value: u64, from: u32| -> usize {
            if from == 0 {
                return 0;
            }
            let v =
                (u128::from(value) * u128::from(rate) + u128::from(from) / 2) / u128::from(from);
            usize::try_from(v).unwrap_or(usize::MAX)
        };
        let start = scale(self.media_time, self.media_timescale).min(len);
        let end = if self.segment_duration == 0 {
            len
        } else {
            start
                .saturating_add(scale(self.segment_duration, self.movie_timescale))
                .min(len)
        };
        start..end
    }
}

/// The edit of the file's only sound track, when it has exactly one plain edit (one entry with
/// a media time, rate 1). Anything else (no edit list, several sound tracks, empty edits,
/// several segments, an unreadable file) gives `None`, and the track is used as decoded.
pub(super) fn audio_edit(path: &Path) -> Option<Edit> {
    let moov = read_moov(path)?;
    let mut movie_timescale = None;
    let mut sound = Vec::new();
    for (kind, body) in boxes(&moov) {
        match &kind {
            b"mvhd" => movie_timescale = header_timescale(body),
            b"trak" => {
                if let Some(track) = sound_track(body) {
                    sound.push(track);
                }
            }
            _ => {}
        }
    }
    let movie_timescale = movie_timescale?;
    match sound.as_slice() {
        [(media_timescale, Some((segment_duration, media_time)))] => Some(Edit {
            media_time: *media_time,
            media_timescale: *media_timescale,
            segment_duration: *segment_duration,
            movie_timescale,
        }),
        _ => None,
    }
}

/// The payload of the top-level `moov` box.
fn read_moov(path: &Path) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut pos = 0u64;
    while pos + 8 <= file_len {
        file.seek(SeekFrom::Start(pos)).ok()?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8]).ok()?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (size, header) = match size32 {
            0 => (file_len - pos, 8),
            1 => {
                file.read_exact(&mut head[8..16]).ok()?;
                let mut large = [0u8; 8];
                large.copy_from_slice(&head[8..16]);
                (u64::from_be_bytes(large), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header || pos.checked_add(size)? > file_len {
            return None;
        }
        if &head[4..8] == b"moov" {
            let len = size - header;
            if len > MAX_MOOV_BYTES {
                return None;
            }
            let mut body = vec![0u8; usize::try_from(len).ok()?];
            file.read_exact(&mut body).ok()?;
            return Some(body);
        }
        pos += size;
    }
    None
}

/// The child boxes of a box payload: (type, payload). Stops at the first malformed header.
fn boxes(mut buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size32 = be_u32(buf, 0)?;
        let kind: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
        let (size, header) = match size32 {
            0 => (buf.len(), 8),
            1 => (usize::try_from(be_u64(buf, 8)?).ok()?, 16),
            n => (usize::try_from(n).ok()?, 8),
        };
        if size < header || size > buf.len() {
            return None;
        }
        let body = &buf[header..size];
        buf = &buf[size..];
        Some((kind, body))
    })
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// For a `trak` whose handler is `soun`: (media timescale, the single plain edit as
/// (segment duration, media time) if the edit list is one).
fn sound_track(trak: &[u8]) -> Option<(u32, Option<(u64, u64)>)> {
    let mdia = child(trak, b"mdia")?;
    let hdlr = child(mdia, b"hdlr")?;
    if hdlr.get(8..12)? != b"soun" {
        return None;
    }
    let media_timescale = header_timescale(child(mdia, b"mdhd")?)?;
    let edit = child(trak, b"edts")
        .and_then(|edts| child(edts, b"elst"))
        .and_then(single_edit);
    Some((media_timescale, edit))
}

/// The timescale of an `mvhd` or `mdhd` box (same layout up to it).
fn header_timescale(body: &[u8]) -> Option<u32> {
    let timescale = match *body.first()? {
        0 => be_u32(body, 12)?,
        1 => be_u32(body, 20)?,
        _ => return None,
    };
    (timescale > 0).then_some(timescale)
}

/// (segment duration, media time) of an edit list with exactly one entry, which plays media at
/// rate 1 from a media time >= 0.
fn single_edit(elst: &[u8]) -> Option<(u64, u64)> {
    let version = *elst.first()?;
    if be_u32(elst, 4)? != 1 {
        return None;
    }
    let (duration, media_time, rate_at) = match version {
        0 => (
            u64::from(be_u32(elst, 8)?),
            i64::from(be_u32(elst, 12)? as i32),
            16,
        ),
        1 => (be_u64(elst, 8)?, be_u64(elst, 16)? as i64, 24),
        _ => return None,
    };
    let rate = be_u32(elst, rate_at)?;
    if rate != 0x0001_0000 {
        return None;
    }
    Some((duration, u64::try_from(media_time).ok()?))
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn elst_v0(entries: &[(u32, i32)]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for &(duration, time) in entries {
            v.extend_from_slice(&duration.to_be_bytes());
            v.extend_from_slice(&time.to_be_bytes());
            v.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        v
    }

    fn timescale_box(kind: &[u8; 4], timescale: u32) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&timescale.to_be_bytes());
        v.extend_from_slice(&[0u8; 8]);
        mp4_box(kind, &v)
    }

    fn trak(handler: &[u8; 4], timescale: u32, elst: Option<Vec<u8>>) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 12]);
        let mut mdia = timescale_box(b"mdhd", timescale);
        mdia.extend(mp4_box(b"hdlr", &hdlr));
        let mut body = Vec::new();
        if let Some(elst) = elst {
            body.extend(mp4_box(b"edts", &mp4_box(b"elst", &elst)));
        }
        body.extend(mp4_box(b"mdia", &mdia));
        mp4_box(b"trak", &body)
    }

    /// The edit `audio_edit` reads from a file with these tracks.
    fn edit_of(name: &str, traks: &[Vec<u8>]) -> Option<Edit> {
        let mut moov = timescale_box(b"mvhd", 1000);
        for t in traks {
            moov.extend_from_slice(t);
        }
        let mut file = mp4_box(b"ftyp", b"M4A \0\0\0\0");
        file.extend(mp4_box(b"moov", &moov));
        file.extend(mp4_box(b"mdat", &[0u8; 32]));
        let path = std::env::temp_dir().join(format!("prunescope-{}-{name}", std::process::id()));
        std::fs::write(&path, file).unwrap();
        let edit = audio_edit(&path);
        let _ = std::fs::remove_file(&path);
        edit
    }

    #[test]
    fn reads_a_single_edit() {
        let edit = edit_of(
            "one.m4a",
            &[trak(b"soun", 22_050, Some(elst_v0(&[(2_500, 1_024)])))],
        );
        let edit = edit.unwrap();
        assert_eq!(
            edit,
            Edit {
                media_time: 1_024,
                media_timescale: 22_050,
                segment_duration: 2_500,
                movie_timescale: 1_000
            }
        );
        assert_eq!(edit.range(22_050, 56_320), 1_024..1_024 + 55_125);
        assert_eq!(edit.range(22_050, 2_000), 1_024..2_000);
        assert_eq!(edit.range(22_050, 100), 100..100);
        // The video track of a film does not count.
        let edit = edit_of(
            "film.mp4",
            &[
                trak(b"vide", 90_000, Some(elst_v0(&[(2_500, 0)]))),
                trak(b"soun", 48_000, Some(elst_v0(&[(2_500, 2_112)]))),
            ],
        );
        assert_eq!(edit.unwrap().media_time, 2_112);
    }

    #[test]
    fn ignores_what_it_does_not_understand() {
        let none = |name: &str, traks: &[Vec<u8>]| assert_eq!(edit_of(name, traks), None);
        none("noedit.m4a", &[trak(b"soun", 44_100, None)]);
        none(
            "empty_edit.m4a",
            &[trak(
                b"soun",
                44_100,
                Some(elst_v0(&[(100, -1), (2_500, 0)])),
            )],
        );
        none(
            "two_segments.m4a",
            &[trak(
                b"soun",
                44_100,
                Some(elst_v0(&[(100, 0), (100, 500)])),
            )],
        );
        none(
            "two_tracks.m4a",
            &[
                trak(b"soun", 44_100, Some(elst_v0(&[(100, 0)]))),
                trak(b"soun", 44_100, Some(elst_v0(&[(100, 0)]))),
            ],
        );
        assert_eq!(audio_edit(Path::new("/definitely/not/here.m4a")), None);
        // Garbage sizes stop the walk instead of reading out of bounds.
        assert_eq!(
            boxes(&[0, 0, 0, 200, b'm', b'o', b'o', b'v', 1, 2]).count(),
            0
        );
        assert_eq!(boxes(&[0, 0, 0, 1, b'm', b'o', b'o', b'v']).count(), 0);
        assert_eq!(boxes(&[0, 0, 0, 3, b'm', b'o', b'o', b'v']).count(), 0);
    }
}
