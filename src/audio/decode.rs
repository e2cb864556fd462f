//! Container and codec decoding with symphonia, downmixed to mono as the packets arrive.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_ISOMP4;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{mp4, AudioError};
use crate::limits::MAX_CLIP_SECONDS;

/// A stream where more than this share of packets fails to decode is corrupt, not a clip with a
/// few dropouts.
const MAX_FAILED_PACKET_SHARE: f64 = 0.5;

/// Decode `path` to mono (the mean of its channels) at its own sample rate.
///
/// Returns the samples, the sample rate and the source channel count. The format is detected
/// from the content (the extension is only a hint). No resampling and no validation beyond
/// "something was decoded": see [`super::load`].
///
/// A clip longer than [`MAX_CLIP_SECONDS`] is [`AudioError::TooLong`]: refused from its header's
/// declared length before any packet is decoded, or, for a stream that does not declare it, at
/// the packet that passes the limit.
pub fn decode(path: &Path) -> Result<(Vec<f32>, u32, usize), AudioError> {
    decode_source(Box::new(open(path)?), path, MAX_CLIP_SECONDS)
}

/// [`decode`] of a file's bytes held in memory; `path` names it in errors and hints the format.
pub fn decode_bytes(bytes: Vec<u8>, path: &Path) -> Result<(Vec<f32>, u32, usize), AudioError> {
    decode_source(
        Box::new(std::io::Cursor::new(bytes)),
        path,
        MAX_CLIP_SECONDS,
    )
}

fn decode_source(
    source: Box<dyn symphonia::core::io::MediaSource>,
    path: &Path,
    max_seconds: u64,
) -> Result<(Vec<f32>, u32, usize), AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Decoders are fed whatever bytes the file holds; a decoder bug must not take the
    // application down with it.
    match crate::util::catch_quietly(|| decode_stream(mss, &hint, path, max_seconds)) {
        Ok(result) => result,
        Err(_) => Err(AudioError::Corrupt {
            path: path.to_path_buf(),
            detail: "the decoder failed on this stream".into(),
        }),
    }
}

fn open(path: &Path) -> Result<File, AudioError> {
    let p = || path.to_path_buf();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(AudioError::NotFound { path: p() })
        }
        Err(source) => return Err(AudioError::Io { path: p(), source }),
    };
    if meta.is_dir() {
        return Err(AudioError::IsDirectory { path: p() });
    }
    if meta.is_file() && meta.len() == 0 {
        return Err(AudioError::EmptyFile { path: p() });
    }
    File::open(path).map_err(|source| AudioError::Io { path: p(), source })
}

/// How a symphonia error reads for this file, when it ends the decoding.
fn fatal(err: SymError, path: &Path) -> AudioError {
    let path = path.to_path_buf();
    match err {
        SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            AudioError::Truncated { path }
        }
        SymError::IoError(source) => AudioError::Io { path, source },
        SymError::Unsupported(_) => AudioError::UnknownFormat { path },
        other => AudioError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Probes the stream, decodes its default audio track packet by packet, and hands back the mono
/// samples, their rate and the source's channel count (see [`decode`]).
fn decode_stream(
    mss: MediaSourceStream<'_>,
    hint: &Hint,
    path: &Path,
    max_seconds: u64,
) -> Result<(Vec<f32>, u32, usize), AudioError> {
    let mut format = symphonia::default::get_probe()
        .probe(
            hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| fatal(e, path))?;
    let is_mp4 = format.format_info().format == FORMAT_ID_ISOMP4;
    let mut track = open_track(&*format, path)?;
    if let (Some(frames), Some(rate)) = (track.declared_frames, track.declared_rate) {
        if rate > 0 && frames > max_seconds.saturating_mul(u64::from(rate)) {
            return Err(AudioError::TooLong {
                path: path.to_path_buf(),
                seconds: Some(frames as f64 / f64::from(rate)),
                max: max_seconds,
            });
        }
    }
    let mut clip = Clip {
        max_seconds,
        ..Clip::default()
    };
    clip.read(&mut *format, track.id, &mut *track.decoder, path)?;
    clip.finish(is_mp4, track.declared_rate, path)
}

/// The default audio track of a stream, and a decoder for it.
struct Track {
    id: u32,
    /// The sample rate and the length in frames its header declares, if any.
    declared_rate: Option<u32>,
    declared_frames: Option<u64>,
    decoder: Box<dyn AudioDecoder>,
}

fn open_track(format: &dyn FormatReader, path: &Path) -> Result<Track, AudioError> {
    let no_audio = || AudioError::NoAudioTrack {
        path: path.to_path_buf(),
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(no_audio)?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(no_audio)?;
    let codec = params.codec;
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(what) => AudioError::UnsupportedCodec {
                path: path.to_path_buf(),
                detail: format!("codec {codec}: {what}"),
            },
            other => fatal(other, path),
        })?;
    Ok(Track {
        id: track.id,
        declared_rate: params.sample_rate,
        declared_frames: track.num_frames,
        decoder,
    })
}

/// What the packets of one track gave: the mono samples, their rate and the source channels,
/// and how many packets failed.
#[derive(Default)]
struct Clip {
    mono: Vec<f32>,
    /// The last decoded buffer's channels (reused between packets).
    planes: Vec<Vec<f32>>,
    rate: Option<u32>,
    channels: usize,
    packets: usize,
    failed: usize,
    last_failure: String,
    /// The stream ended in the middle of a packet.
    truncated: bool,
    /// The longest clip accepted, in seconds.
    max_seconds: u64,
}

impl Clip {
    /// Decodes the packets of track `track_id` until the stream ends (or a chained ogg stream
    /// begins). A packet that fails to decode is counted and skipped; [`Clip::finish`] judges
    /// how many did.
    fn read(
        &mut self,
        format: &mut dyn FormatReader,
        track_id: u32,
        decoder: &mut dyn AudioDecoder,
        path: &Path,
    ) -> Result<(), AudioError> {
        loop {
            let packet = match format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                // A new chained stream (ogg): the first one is the clip.
                Err(SymError::ResetRequired) => return Ok(()),
                Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.truncated = true;
                    return Ok(());
                }
                Err(err) if self.mono.is_empty() => return Err(fatal(err, path)),
                Err(err) => {
                    return Err(AudioError::Corrupt {
                        path: path.to_path_buf(),
                        detail: format!(
                            "{err} (after {:.2} s of audio)",
                            seconds(&self.mono, self.rate)
                        ),
                    })
                }
            };
            if packet.track_id != track_id {
                continue;
            }
            self.packets += 1;
            let buf = match decoder.decode(&packet) {
                Ok(buf) => buf,
                Err(SymError::DecodeError(msg)) => {
                    self.failed += 1;
                    self.last_failure = msg.to_string();
                    continue;
                }
                Err(SymError::IoError(e)) => {
                    self.failed += 1;
                    self.last_failure = e.to_string();
                    continue;
                }
                Err(SymError::ResetRequired) => return Ok(()),
                Err(err) => return Err(fatal(err, path)),
            };
            self.add(buf, path)?;
        }
    }

    /// Appends a decoded buffer, downmixed; its rate must be the stream's.
    fn add(&mut self, buf: GenericAudioBufferRef<'_>, path: &Path) -> Result<(), AudioError> {
        if buf.frames() == 0 || buf.num_planes() == 0 {
            return Ok(());
        }
        let buf_rate = buf.spec().rate();
        match self.rate {
            None => {
                self.rate = Some(buf_rate);
                self.channels = buf.num_planes();
            }
            Some(r) if r != buf_rate => {
                return Err(AudioError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("sample rate changes mid-stream ({r} Hz to {buf_rate} Hz)"),
                });
            }
            Some(_) => {}
        }
        let max_frames = self.max_seconds.saturating_mul(u64::from(buf_rate));
        if (self.mono.len() + buf.frames()) as u64 > max_frames {
            return Err(AudioError::TooLong {
                path: path.to_path_buf(),
                seconds: None,
                max: self.max_seconds,
            });
        }
        buf.copy_to_vecs_planar::<f32>(&mut self.planes);
        downmix_into(&self.planes, &mut self.mono);
        Ok(())
    }

    /// The samples (of an MP4, the span its edit list names), rate and channels, or why the
    /// stream is not a clip: too many packets failed, it was cut short before any audio, its
    /// header declares a rate of 0, or it held no audio.
    fn finish(
        mut self,
        is_mp4: bool,
        declared_rate: Option<u32>,
        path: &Path,
    ) -> Result<(Vec<f32>, u32, usize), AudioError> {
        let (packets, failed) = (self.packets, self.failed);
        if packets > 0 && failed as f64 > MAX_FAILED_PACKET_SHARE * packets as f64 {
            return Err(AudioError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "{failed} of {packets} packets failed to decode ({})",
                    self.last_failure
                ),
            });
        }
        if let (true, Some(rate)) = (is_mp4, self.rate) {
            if let Some(edit) = mp4::audio_edit(path) {
                let keep = edit.range(rate, self.mono.len());
                self.mono.truncate(keep.end);
                self.mono.drain(..keep.start);
            }
        }
        match self.rate {
            Some(rate) if !self.mono.is_empty() => Ok((self.mono, rate, self.channels)),
            _ if self.truncated => Err(AudioError::Truncated {
                path: path.to_path_buf(),
            }),
            // A declared rate of 0 is a broken header rather than an empty clip.
            _ if declared_rate == Some(0) => Err(AudioError::UnsupportedSampleRate {
                path: path.to_path_buf(),
                rate: 0,
            }),
            _ => Err(AudioError::ZeroLength {
                path: path.to_path_buf(),
            }),
        }
    }
}

fn seconds(mono: &[f32], rate: Option<u32>) -> f64 {
    match rate {
        Some(r) if r > 0 => mono.len() as f64 / f64::from(r),
        _ => 0.0,
    }
}

/// Append the mean of the planes, frame by frame.
fn downmix_into(planes: &[Vec<f32>], mono: &mut Vec<f32>) {
    let Some(first) = planes.first() else { return };
    if planes.len() == 1 {
        mono.extend_from_slice(first);
        return;
    }
    let frames = planes.iter().map(Vec::len).min().unwrap_or(0);
    let start = mono.len();
    mono.extend_from_slice(&first[..frames]);
    let out = &mut mono[start..];
    for plane in &planes[1..] {
        for (o, &s) in out.iter_mut().zip(plane) {
            *o += s;
        }
    }
    let scale = 1.0 / planes.len() as f32;
    for o in out {
        *o *= scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_is_the_mean() {
        let mut mono = vec![9.0];
        downmix_into(&[vec![1.0, 2.0], vec![3.0, -2.0]], &mut mono);
        assert_eq!(mono, vec![9.0, 2.0, 0.0]);
        downmix_into(&[vec![0.5]], &mut mono);
        assert_eq!(mono, vec![9.0, 2.0, 0.0, 0.5]);
        downmix_into(&[], &mut mono);
        assert_eq!(mono.len(), 4);
    }

    /// A 16-bit mono WAV of `frames` zero samples at `rate` (sparse: the data takes no disk).
    fn silent_wav(path: &Path, rate: u32, frames: u64) {
        let data = frames * 2;
        let mut head = Vec::new();
        head.extend_from_slice(b"RIFF");
        head.extend_from_slice(&(36 + data as u32).to_le_bytes());
        head.extend_from_slice(b"WAVEfmt ");
        head.extend_from_slice(&16u32.to_le_bytes());
        head.extend_from_slice(&1u16.to_le_bytes());
        head.extend_from_slice(&1u16.to_le_bytes());
        head.extend_from_slice(&rate.to_le_bytes());
        head.extend_from_slice(&(rate * 2).to_le_bytes());
        head.extend_from_slice(&2u16.to_le_bytes());
        head.extend_from_slice(&16u16.to_le_bytes());
        head.extend_from_slice(b"data");
        head.extend_from_slice(&(data as u32).to_le_bytes());
        crate::util::sparse_file(path, &head, head.len() as u64 + data);
    }

    #[test]
    fn the_longest_clip_is_accepted_and_one_sample_more_is_refused_unread() {
        let dir = crate::util::TempDir::new("too-long").unwrap();
        // 1 kHz (the lowest rate accepted) keeps the 4-hour edge small: 14.4 M samples.
        let rate = super::super::MIN_SAMPLE_RATE;
        let at = dir.path().join("at.wav");
        silent_wav(&at, rate, MAX_CLIP_SECONDS * u64::from(rate));
        let (mono, r, _) = decode(&at).unwrap();
        assert_eq!(
            (mono.len() as u64, r),
            (MAX_CLIP_SECONDS * u64::from(rate), rate)
        );
        drop(mono);
        let past = dir.path().join("past.wav");
        silent_wav(&past, rate, MAX_CLIP_SECONDS * u64::from(rate) + 1);
        let e = decode(&past).unwrap_err();
        assert!(
            matches!(e, AudioError::TooLong { seconds: Some(s), max, .. } if s > 14_400.0 && max == MAX_CLIP_SECONDS),
            "{e}"
        );
        assert!(
            e.to_string().ends_with(
                "past.wav: the clip is 4:00:00 long: prunescope accepts clips of at most 4:00:00"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_stream_past_the_limit_stops_there() {
        // The same rule with a limit of 1 s, on formats that declare their length or not: the
        // samples held never pass it.
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for name in [
            "jfk.mp3",
            "arctic_a0007_2s5.ogg",
            "arctic_a0007_2s5.m4a",
            "guit_em9.flac",
        ] {
            let p = data.join(name);
            let bytes = std::fs::read(&p).unwrap();
            let e = decode_source(Box::new(std::io::Cursor::new(bytes)), &p, 1).unwrap_err();
            assert!(
                matches!(e, AudioError::TooLong { max: 1, .. }),
                "{name}: {e}"
            );
            let ok = decode_source(
                Box::new(std::io::Cursor::new(std::fs::read(&p).unwrap())),
                &p,
                60,
            );
            assert!(ok.is_ok(), "{name}: {:?}", ok.err());
        }
    }
}
