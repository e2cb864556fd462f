//! The same weights in CTranslate2 and Hugging Face layouts (single file, sharded, f16, bf16)
//! give the same encoder outputs, scores and texts.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use crate::common::{max_abs_diff, TempDir};
use candle_core::{DType, Device, Tensor};
use prunescope::engine::{self, Decoding, Plan, RunMethod};
use prunescope::model::whisper::{convert_ct2_to_hf, Whisper};
use prunescope::model::AudioLanguageModel;
use prunescope::prune::{Method, Params};
use prunescope::scores::Layers;

fn outputs(model: &Whisper) -> (Vec<f32>, Vec<f32>, Vec<String>) {
    let audio = prunescope::audio::load(&common::data("arctic_a0007.wav")).unwrap();
    let enc = model.encode(&audio.samples, Layers::Last).unwrap();
    let hidden = enc.hidden.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let plan = Plan::grid(
        &[
            RunMethod::Prune(Method::Full),
            RunMethod::Prune(Method::TopK),
        ],
        &[0.25],
        Params::default(),
        Decoding::default(),
    );
    let a = engine::analyze(model, &audio, &plan, &AtomicBool::new(false), &mut |_| {}).unwrap();
    (
        hidden,
        enc.scores().to_vec(),
        a.runs.into_iter().map(|r| r.text).collect(),
    )
}

#[test]
fn ctranslate2_and_hugging_face_layouts_agree() {
    let ct2 = common::model();
    let (h0, s0, t0) = outputs(ct2);
    let tmp = TempDir::new();

    // f32 single file: the same numbers exactly (same weights, same code).
    let f32_dir = tmp.0.join("f32");
    convert_ct2_to_hf(&common::model_dir(), &f32_dir, DType::F32).unwrap();
    let hf = Whisper::load(&f32_dir).unwrap();
    assert_eq!(hf.config, ct2.config);
    let (h1, s1, t1) = outputs(&hf);
    assert_eq!(max_abs_diff(&h0, &h1), 0.0);
    assert_eq!(max_abs_diff(&s0, &s1), 0.0);
    assert_eq!(t0, t1);

    // f16 storage is lossless for these weights (they ship as f16).
    let f16_dir = tmp.0.join("f16");
    convert_ct2_to_hf(&common::model_dir(), &f16_dir, DType::F16).unwrap();
    let (h2, _, t2) = outputs(&Whisper::load(&f16_dir).unwrap());
    assert_eq!(max_abs_diff(&h0, &h2), 0.0);
    assert_eq!(t0, t2);

    // bf16 rounds the weights: close, not equal.
    let bf16_dir = tmp.0.join("bf16");
    convert_ct2_to_hf(&common::model_dir(), &bf16_dir, DType::BF16).unwrap();
    let (h3, _, t3) = outputs(&Whisper::load(&bf16_dir).unwrap());
    let d = max_abs_diff(&h0, &h3);
    assert!(d > 0.0 && d < 0.5, "bf16 hidden differs by {d}");
    assert_eq!(t3[0], t0[0], "bf16 full-token text");

    // Sharded: the f32 file split in two with an index.
    let sharded = tmp.0.join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    let all =
        candle_core::safetensors::load(f32_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, sharded.join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), serde_json::Value::String(file.into()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(f32_dir.join(f), sharded.join(f)).unwrap();
    }
    let (h4, _, t4) = outputs(&Whisper::load(&sharded).unwrap());
    assert_eq!(max_abs_diff(&h0, &h4), 0.0);
    assert_eq!(t0, t4);

    // A shard named by the index but missing is a clear error.
    std::fs::remove_file(sharded.join("model-00002-of-00002.safetensors")).unwrap();
    let err = Whisper::load(&sharded).err().unwrap().to_string();
    assert!(err.contains("missing"), "{err}");
}
