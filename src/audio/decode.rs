//! Container and codec decoding with symphonia, downmixed to mono as the packets arrive.

use std::fs::File;
use std::io::ErrorKind;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_ISOMP4;
use symphonia::core::formats::{FormatOptions, TrackType};
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
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NoAudioTrack {
            path: path.to_path_buf(),
        })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::NoAudioTrack {
            path: path.to_path_buf(),
        })?;
    let codec = params.codec;
    let declared_rate = params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(what) => AudioError::UnsupportedCodec {
                path: path.to_path_buf(),
                detail: format!("codec {codec}: {what}"),
            },
            other => fatal(other, path),
        })?;

    let mut mono: Vec<f32> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut rate: Option<u32> = None;
    let mut channels = 0usize;
    let mut packets = 0usize;
    let mut failed = 0usize;
    let mut last_failure = String::new();
    let mut truncated = false;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A new chained stream (ogg): the first one is the clip.
            Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                truncated = true;
                break;
            }
            Err(err) => {
                if mono.is_empty() {
                    return Err(fatal(err, path));
                }
                return Err(AudioError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("{err} (after {:.2} s of audio)", seconds(&mono, rate)),
                });
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(msg)) => {
                failed += 1;
                last_failure = msg.to_string();
                continue;
            }
            Err(SymError::IoError(e)) => {
                failed += 1;
                last_failure = e.to_string();
                continue;
            }
            Err(SymError::ResetRequired) => break,
            Err(err) => return Err(fatal(err, path)),
        };
        if buf.frames() == 0 || buf.num_planes() == 0 {
            continue;
        }
        let buf_rate = buf.spec().rate();
        match rate {
            None => {
                rate = Some(buf_rate);
                channels = buf.num_planes();
            }
            Some(r) if r != buf_rate => {
                return Err(AudioError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("sample rate changes mid-stream ({r} Hz to {buf_rate} Hz)"),
                });
            }
            Some(_) => {}
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        downmix_into(&planes, &mut mono);
    }

    if packets > 0 && failed as f64 > MAX_FAILED_PACKET_SHARE * packets as f64 {
        return Err(AudioError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{failed} of {packets} packets failed to decode ({last_failure})"),
        });
    }
    if let (true, Some(rate)) = (is_mp4, rate) {
        if let Some(edit) = mp4::audio_edit(path) {
            let keep = edit.range(rate, mono.len());
            mono.truncate(keep.end);
            mono.drain(..keep.start);
        }
    }
    match rate {
        Some(rate) if !mono.is_empty() => Ok((mono, rate, channels)),
        _ if truncated => Err(AudioError::Truncated {
            path: path.to_path_buf(),
        }),
        _ => {
            // A declared rate of 0 is a broken header rather than an empty clip.
            if declared_rate == Some(0) {
                return Err(AudioError::UnsupportedSampleRate {
                    path: path.to_path_buf(),
                    rate: 0,
                });
            }
            Err(AudioError::ZeroLength {
                path: path.to_path_buf(),
            })
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
