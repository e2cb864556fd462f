#!/usr/bin/env python3
"""Reference runs of `encoderdrop` on Whisper (early attentive sparsification, arXiv
2506.15912; docs/SPEC.md section 4): tests/data/golden/encoderdrop.json.

On the CTranslate2 tiny.en that `prunescope fetch whisper-tiny.en` prints, converted with
`prunescope convert` (transformers, eager attention, f32), for assets/jfk.wav and
tests/data/arctic_a0007.wav, drop layers L = 1, 2, 3 and keep 0.5, 0.25, 0.1:

- the encoder runs as shipped (`output_attentions`, `output_hidden_states`) on the 30 s window;
- `scores`: layer L-1's attention weights summed over the n valid query rows, mean over heads,
  at the n valid columns; `kept` = top-K (K = budget(keep, n), ties to the lower index);
- the encoder's layers L.. run on the hidden states entering layer L at the kept rows followed
  by every padding row (n..1500: the silence context up to the window's end), no mask, each row
  keeping the position embedding it was given at the input; then the final layer norm;
- greedy decode over that memory exactly as scripts/make-peer-fixtures.py section C does
  without pruning (prompt [SOT, NOTIMESTAMPS], the config's suppress lists, 224 tokens at most).

Run by hand, never in CI (needs torch + transformers 5), after `cargo build`:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install torch transformers soundfile tokenizers
    /tmp/v/bin/python scripts/make-encoderdrop-fixtures.py
"""
import importlib.util
import json
import math
import os
import subprocess
import tempfile

import soundfile as sf
import torch
from tokenizers import Tokenizer
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "peers", os.path.join(ROOT, "scripts", "make-peer-fixtures.py"))
peers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peers)

LAYERS = (1, 2, 3)
KEEPS = (0.5, 0.25, 0.1)


def layer_out(out):
    return out[0] if isinstance(out, tuple) else out


def main():
    ct2_dir = subprocess.run([peers.BINARY, "fetch", "whisper-tiny.en"], check=True,
                             capture_output=True, text=True).stdout.strip()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf")
        subprocess.run([peers.BINARY, "convert", ct2_dir, hf], check=True)
        cfg = json.load(open(os.path.join(hf, "config.json")))
        model = WhisperForConditionalGeneration.from_pretrained(
            hf, attn_implementation="eager", dtype=torch.float32).eval()
        enc = model.model.encoder
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        fe = WhisperFeatureExtractor(feature_size=cfg["num_mel_bins"], sampling_rate=16000)
        for rel in peers.CLIPS:
            audio, sr = sf.read(os.path.join(ROOT, rel), dtype="float32")
            assert sr == 16000 and audio.ndim == 1 and len(audio) <= peers.WIN
            clip = os.path.basename(rel)
            feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
            out = enc(feats, output_attentions=True, output_hidden_states=True)
            n = min(1500, math.ceil(math.ceil(len(audio) / 160) / 2))
            runs = []
            for layer in LAYERS:
                att = out.attentions[layer - 1][0].double()  # (H, 1500, 1500)
                scores = att[:, :n, :n].sum(1).mean(0)
                scores = [float(x) for x in scores]
                x_in = out.hidden_states[layer]  # entering layer `layer`
                for keep in KEEPS:
                    k = peers.budget(keep, n)
                    kept = peers.topk(scores, k)
                    peers.tie_note(f"{clip} L{layer} {keep}", scores, k)
                    idx = torch.tensor(kept + list(range(n, 1500)))
                    x = x_in[:, idx]
                    for lay in enc.layers[layer:]:
                        x = layer_out(lay(x, attention_mask=None))
                    memory = enc.layer_norm(x)
                    ids, _, _ = peers.whisper_fastv(model, cfg, memory, k, None)
                    text = tok.decode(ids, skip_special_tokens=True).strip()
                    runs.append({"layer": layer, "keep": keep, "k": k, "kept": kept, "ids": ids,
                                 "text": text})
                    print(f"{clip} L{layer} keep {keep}: k {k}, {len(ids)} ids: {text!r}")
            # Keeping every token is the plain encoder: a check of the loop itself.
            x = out.hidden_states[2]
            for lay in enc.layers[2:]:
                x = layer_out(lay(x, attention_mask=None))
            diff = float((enc.layer_norm(x) - out.last_hidden_state).abs().max())
            assert diff < 1e-4, diff
            result[clip] = {"n": n, "runs": runs}
    path = os.path.join(peers.GOLDEN, "encoderdrop.json")
    with open(path, "w") as fh:
        json.dump(result, fh)
    print(path, os.path.getsize(path), "bytes")
    print("notes:" if peers.NOTES else "notes: none")
    for note in peers.NOTES:
        print("  " + note)


if __name__ == "__main__":
    main()
