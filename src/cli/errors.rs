//! How the command line words an error: the one line `main` prints, the causes joined by ": "
//! as anyhow's `{:#}` joins them, each library error that concerns a flag worded with that
//! flag's name. The library says "FastV layer 5: ..."; the command line `--fastv-layer 5: ...`.

use std::error::Error;

use prunescope::engine::{EngineError, Unavailable};
use prunescope::eval::runner::RunnerError;
use prunescope::model::ModelError;

/// The error's line, without the leading `error: `.
pub fn message(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| flag_wording(cause).unwrap_or_else(|| cause.to_string()))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Why a method cannot run, with the flag that set what it lacks.
pub fn unavailable(why: &Unavailable) -> String {
    match why {
        Unavailable::FastVLayer { layer, layers } => format!(
            "--fastv-layer {layer}: the language model has {layers} layers (0 to {})",
            layers.saturating_sub(1)
        ),
        Unavailable::DropLayer { layer, layers } => format!(
            "--drop-layer {layer}: the encoder has {layers} layers, so the drop goes after layer 1 to {}",
            layers.saturating_sub(1)
        ),
        Unavailable::NoPrompt
        | Unavailable::NoPromptScores
        | Unavailable::NoEncoderDrop
        | Unavailable::SpeechPruneNoPrompt => why.to_string(),
    }
}

/// One cause's words when a flag set what went wrong (None: the library's own words do).
fn flag_wording(e: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<RunnerError>() {
        return runner(e);
    }
    if let Some(e) = e.downcast_ref::<EngineError>() {
        return engine(e);
    }
    if let Some(e) = e.downcast_ref::<ModelError>() {
        return model(e);
    }
    e.downcast_ref::<Unavailable>().map(unavailable)
}

fn runner(e: &RunnerError) -> Option<String> {
    match e {
        RunnerError::Mismatch { .. } => Some(format!(
            "{e}: pass another --out, or delete it to start over"
        )),
        RunnerError::Engine(e) => engine(e),
        _ => None,
    }
}

fn engine(e: &EngineError) -> Option<String> {
    match e {
        EngineError::ScoreLayer { layer, layers } => Some(format!(
            "--score-layer {layer}: the encoder has {layers} layers (0 to {})",
            layers.saturating_sub(1)
        )),
        EngineError::Unavailable(why) => Some(unavailable(why)),
        EngineError::Model(e) => model(e),
        _ => None,
    }
}

fn model(e: &ModelError) -> Option<String> {
    match e {
        ModelError::NoCuda => Some(
            "this prunescope was built without CUDA: rebuild with `cargo build --release --features cuda` (needs nvcc), or use --device cpu".into(),
        ),
        ModelError::WhisperDevice(device) => Some(format!(
            "Whisper runs on the CPU in prunescope; --device {device} is for Qwen2-Audio and Audio Flamingo 3"
        )),
        ModelError::WhisperPrecision(dtype) => Some(format!(
            "Whisper runs in f32 in prunescope; --dtype {dtype} is for Qwen2-Audio and Audio Flamingo 3"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_where_a_flag_set_the_value() {
        let e = anyhow::Error::from(EngineError::from(Unavailable::FastVLayer {
            layer: 5,
            layers: 2,
        }));
        assert_eq!(
            message(&e),
            "--fastv-layer 5: the language model has 2 layers (0 to 1)"
        );
        let e = anyhow::Error::from(RunnerError::Engine(EngineError::ScoreLayer {
            layer: 4,
            layers: 4,
        }));
        assert_eq!(
            message(&e),
            "--score-layer 4: the encoder has 4 layers (0 to 3)"
        );
        let e = anyhow::Error::from(ModelError::WhisperPrecision(
            prunescope::model::Precision::Bf16,
        ))
        .context("cannot load model m");
        assert_eq!(
            message(&e),
            "cannot load model m: Whisper runs in f32 in prunescope; --dtype bf16 is for Qwen2-Audio and Audio Flamingo 3"
        );
        // Other errors keep anyhow's words.
        let e = anyhow::Error::from(EngineError::NotCollected { layer: 1 }).context("analyze");
        assert_eq!(message(&e), format!("{e:#}"));
    }
}
