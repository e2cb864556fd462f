//! Container and codec decoding with symphonia, downmixed to mono as the packets arrive.

use std::fs::File;
use std::io::ErrorKind;
use std::panic::{self, AssertUnwindSafe};
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

/// A stream where more than this share of packets fails to decode is corrupt, not a clip with a
/// few dropouts.
const MAX_FAILED_PACKET_SHARE: f64 = 0.5;

/// Decode `path` to mono (the mean of its channels) at its own sample rate.
///
/// Returns the samples, the sample rate and the source channel count. The format is detected
/// from the content (the extension is only a hint). No resampling and no validation beyond
/// "something was decoded": see [`super::load`].
pub fn decode(path: &Path) -> Result<(Vec<f32>, u32, usize), AudioError> {
    decode_source(Box::new(open(path)?), path)
}

/// [`decode`] of a file's bytes held in memory; `path` names it in errors and hints the format.
pub fn decode_bytes(bytes: Vec<u8>, path: &Path) -> Result<(Vec<f32>, u32, usize), AudioError> {
    decode_source(Box::new(std::io::Cursor::new(bytes)), path)
}

fn decode_source(
    source: Box<dyn symphonia::core::io::MediaSource>,
    path: &Path,
) -> Result<(Vec<f32>, u32, usize), AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Decoders are fed whatever bytes the file holds; a decoder bug must not take the
    // application down with it.
    match panic::catch_unwind(AssertUnwindSafe(|| decode_stream(mss, &hint, path))) {
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

fn decode_stream(
    mss: MediaSourceStream<'_>,
    hint: &Hint,
    path: &Path,
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
    let track = AudioTrack::open(format.as_ref(), path)?;
    let mut decoder = track.decoder;
    let mut mono = Mono::default();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A new chained stream (ogg): the first one is the clip.
            Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                mono.truncated = true;
                break;
            }
            Err(err) => return Err(mono.broken_at(err, path)),
        };
        if packet.track_id != track.id {
            continue;
        }
        mono.packets += 1;
        match decoder.decode(&packet) {
            Ok(buf) => mono.push(&buf, path)?,
            Err(SymError::DecodeError(msg)) => mono.failed(msg.to_string()),
            Err(SymError::IoError(e)) => mono.failed(e.to_string()),
            Err(SymError::ResetRequired) => break,
            Err(err) => return Err(fatal(err, path)),
        }
    }
    mono.finish(is_mp4, track.declared_rate, path)
}

/// The default audio track of a stream: its id, its declared sample rate and its decoder.
struct AudioTrack {
    id: u32,
    declared_rate: Option<u32>,
    decoder: Box<dyn AudioDecoder>,
}

impl AudioTrack {
    fn open(format: &dyn FormatReader, path: &Path) -> Result<AudioTrack, AudioError> {
        let no_track = || AudioError::NoAudioTrack {
            path: path.to_path_buf(),
        };
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(no_track)?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(no_track)?;
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
        Ok(AudioTrack {
            id: track.id,
            declared_rate: params.sample_rate,
            decoder,
        })
    }
}

/// The clip as its packets arrive: the mono samples, the stream's rate and channels, and what
/// went wrong on the way.
#[derive(Default)]
struct Mono {
    samples: Vec<f32>,
    /// The last buffer's planes, reused.
    planes: Vec<Vec<f32>>,
    /// The first decoded buffer's rate and channel count.
    rate: Option<u32>,
    channels: usize,
    /// The packets of the track, those that failed to decode, and the last failure's reason.
    packets: usize,
    failed: usize,
    last_failure: String,
    /// The stream ended in the middle of a packet.
    truncated: bool,
}

impl Mono {
    /// Appends a decoded buffer, downmixed; a rate that changes mid-stream is corrupt.
    fn push(&mut self, buf: &GenericAudioBufferRef<'_>, path: &Path) -> Result<(), AudioError> {
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
        buf.copy_to_vecs_planar::<f32>(&mut self.planes);
        downmix_into(&self.planes, &mut self.samples);
        Ok(())
    }

    /// A packet that did not decode: counted, not fatal (see [`MAX_FAILED_PACKET_SHARE`]).
    fn failed(&mut self, why: String) {
        self.failed += 1;
        self.last_failure = why;
    }

    /// The error of a stream that cannot be read on: where it broke, once audio came out.
    fn broken_at(&self, err: SymError, path: &Path) -> AudioError {
        if self.samples.is_empty() {
            return fatal(err, path);
        }
        AudioError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{err} (after {:.2} s of audio)",
                seconds(&self.samples, self.rate)
            ),
        }
    }

    /// The samples, rate and channel count; an error when too many packets failed or nothing
    /// was decoded. An MP4's edit list trims the priming and padding samples first.
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
                let keep = edit.range(rate, self.samples.len());
                self.samples.truncate(keep.end);
                self.samples.drain(..keep.start);
            }
        }
        match self.rate {
            Some(rate) if !self.samples.is_empty() => Ok((self.samples, rate, self.channels)),
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
}
