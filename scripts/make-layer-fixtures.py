#!/usr/bin/env python3
"""Reference received attention of every encoder layer (docs/SPEC.md section 2, per layer).

For Whisper tiny.en (the registry model, converted to the Hugging Face layout by
`prunescope convert`) on assets/jfk.wav and tests/data/arctic_a0007.wav, and for the toy
Qwen2-Audio / AF3 checkpoints of tests/data/alm on the clips of their golden files: transformers,
eager attention, f32. Each layer's attention weights are taken with a forward hook on its
self-attention; per layer, the column sums over the valid query rows of every head, then the mean
(the paper's rule) and the max over heads; the pooled models pool each by pairs.

Writes tests/data/golden/layer_scores.json and tests/data/alm/layer_scores.json.
Run by hand, never in CI (needs torch + transformers 5, e.g. .venv-bench of
scripts/bench-baseline.py), after `cargo build`:
    .venv-bench/bin/python scripts/make-layer-fixtures.py
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
    WhisperModel,
)

torch.set_grad_enabled(False)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "debug", "prunescope")


class Layers:
    """Every self-attention's weights, by forward hooks (eager attention returns them)."""

    def __init__(self, layers):
        self.weights = [None] * len(layers)
        for i, layer in enumerate(layers):
            layer.self_attn.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def f(_m, _i, out):
            self.weights[i] = out[1]

        return f


def received(w, valid_rows):
    """(H, T, T) weights -> per-head column sums over the valid rows, (H, T), in f64."""
    return w.double()[:, :valid_rows, :].sum(1)


def reduce(per_head, n, pooled):
    mean, mx = per_head.mean(0), per_head.max(0).values
    if pooled:
        mean = (mean[0 : 2 * n : 2] + mean[1 : 2 * n : 2]) / 2
        mx = (mx[0 : 2 * n : 2] + mx[1 : 2 * n : 2]) / 2
    else:
        mean, mx = mean[:n], mx[:n]
    return [float(x) for x in mean], [float(x) for x in mx]


def whisper():
    model_dir = subprocess.run([BINARY, "fetch", "whisper-tiny.en"], check=True,
                               capture_output=True, text=True).stdout.strip()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf")
        subprocess.run([BINARY, "convert", model_dir, hf], check=True)
        model = WhisperModel.from_pretrained(hf, attn_implementation="eager",
                                             dtype=torch.float32).eval()
        enc = model.encoder
        cap = Layers(enc.layers)
        fe = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins, sampling_rate=16000)
        for rel in ["assets/jfk.wav", "tests/data/arctic_a0007.wav"]:
            audio, sr = sf.read(os.path.join(ROOT, rel), dtype="float32")
            assert sr == 16000 and audio.ndim == 1 and len(audio) <= 480000
            feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
            enc(feats)
            n = min(1500, math.ceil(math.ceil(len(audio) / 160) / 2))
            layers = []
            for w in cap.weights:
                mean, mx = reduce(received(w[0], n), n, pooled=False)
                layers.append({"mean": mean, "max": mx})
            out[os.path.basename(rel)] = {"n": n, "layers": layers}
            print(rel, n, "tokens,", len(layers), "layers")
    path = os.path.join(ROOT, "tests", "data", "golden", "layer_scores.json")
    with open(path, "w") as fh:
        json.dump(out, fh)


def toy(name, golden, cls, mask_arg):
    d = os.path.join(ROOT, "tests", "data", "alm", name)
    g = json.load(open(os.path.join(ROOT, "tests", "data", "alm", golden)))
    model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    cap = Layers(model.model.audio_tower.layers)
    audio, sr = sf.read(os.path.join(ROOT, "assets", "jfk.wav"), dtype="float32")
    off, n_samples = g["offset_samples"], g["n_samples"]
    clip = audio[off : off + n_samples]
    window = g["window_samples"]
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000,
                                 chunk_length=window // 16000)
    chunks = [clip[i : i + window] for i in range(0, len(clip), window)]
    f = fe(chunks, sampling_rate=16000, return_attention_mask=True, padding="max_length",
           return_tensors="pt")
    lengths = [int(m.sum()) for m in f["attention_mask"]]
    valid = [((L - 1) // 2 + 1, ((L - 1) // 2 + 1 - 2) // 2 + 1) for L in lengths]
    audio_id = json.load(open(os.path.join(d, "config.json"))).get(
        "audio_token_index", None) or model.config.audio_token_id
    ids = torch.tensor([[audio_id] * sum(n for _, n in valid)])
    # The model's own path builds the tower's padding mask.
    model(input_ids=ids, input_features=f["input_features"], **{mask_arg: f["attention_mask"]})
    per_layer = [{"mean": [], "max": []} for _ in cap.weights]
    for b, (lc, n) in enumerate(valid):
        for i, w in enumerate(cap.weights):
            mean, mx = reduce(received(w[b], lc), n, pooled=True)
            per_layer[i]["mean"] += mean
            per_layer[i]["max"] += mx
    # The last layer's mean is the golden scores (a check of this script).
    last = np.array(per_layer[-1]["mean"])
    err = float(np.abs(last - np.array(g["scores"])).max())
    print(name, len(last), "tokens, last layer vs golden scores:", err)
    assert err < 1e-5, err
    return {"golden": golden, "layers": per_layer}


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"build the binary first: cargo build ({BINARY} is missing)")
    whisper()
    out = {
        "qwen2-audio-tiny": toy("qwen2-audio-tiny", "qwen2_audio_padded.json",
                                Qwen2AudioForConditionalGeneration,
                                "feature_attention_mask"),
        "af3-tiny": toy("af3-tiny", "af3_two_windows.json",
                        AudioFlamingo3ForConditionalGeneration, "input_features_mask"),
    }
    with open(os.path.join(ROOT, "tests", "data", "alm", "layer_scores.json"), "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
