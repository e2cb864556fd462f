#!/usr/bin/env python3
"""Reference runs of `encoderdrop` (early attentive sparsification, arXiv 2506.15912;
docs/SPEC.md section 4) on Whisper (tests/data/golden/encoderdrop.json) and on the toy
Qwen2-Audio and AF3 (tests/data/alm/encoderdrop.json).

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

The toy models: their audio towers as transformers runs them on the golden cases' audio
(scripts/make-alm-fixtures.py: jfk from 1 s, one padded 2 s window for Qwen2-Audio, two for
AF3), drop layer 1 of 2; per window, layer 0's attention summed over the valid post-conv rows,
mean over heads, averaged over each pooled pair ranks the pooled tokens, K_w = budget(keep,
n_valid) of them; their two positions each (hidden states entering layer 1) through layer 1
with no mask, then the pairs averaged, the final norm and the projector in place of the golden
full run's audio embeddings; greedy decode (scripts/make-peer-fixtures.py `greedy_recompute`).

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


def alm(name, golden, cls):
    import numpy as np
    from transformers.masking_utils import create_bidirectional_mask
    d = os.path.join(peers.ALM, name)
    g = json.load(open(os.path.join(peers.ALM, golden)))
    model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    audio_id = json.load(open(os.path.join(d, "config.json"))).get(
        "audio_token_index", None) or model.config.audio_token_id
    eos = json.load(open(os.path.join(d, "generation_config.json")))["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    full = next(r for r in g["runs"] if r["method"] == "full")
    T = len(full["input_ids"])
    e = torch.tensor(full["embeds"], dtype=torch.float32).view(T, -1)
    audio_pos = [i for i, t in enumerate(full["input_ids"]) if t == audio_id]
    a0, n = audio_pos[0], len(audio_pos)
    samples, sr = sf.read(os.path.join(ROOT, "assets", "jfk.wav"), dtype="float32")
    clip = samples[g["offset_samples"]:g["offset_samples"] + g["n_samples"]]
    win = g["window_samples"]
    chunks = [clip[i:i + win] for i in range(0, len(clip), win)]
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000,
                                 chunk_length=win // 16000)
    f = fe(chunks, sampling_rate=16000, return_attention_mask=True, padding="max_length",
           return_tensors="pt")
    feats, mask = f["input_features"], f["attention_mask"]
    tower = model.model.audio_tower
    t = (feats.shape[-1] - 2) // 2 + 1
    lengths = [int(m.sum()) for m in mask]
    lcs = [(L - 1) // 2 + 1 for L in lengths]
    m2 = (torch.arange(t)[None, :] < torch.tensor(lcs)[:, None]).long()
    m4 = create_bidirectional_mask(config=tower.config,
                                   inputs_embeds=torch.zeros(feats.shape[0], t, 1), attention_mask=m2)
    if g["kind"] == "qwen2_audio":
        out = tower(feats, attention_mask=m4, output_attentions=True, output_hidden_states=True)
    else:
        out = tower(feats, input_features_mask=mask, output_attentions=True,
                    output_hidden_states=True)
    # The plain pass's pooled output is the golden one: the check of the path.
    rows = torch.cat([out.last_hidden_state[b, :(lc - 2) // 2 + 1] for b, lc in enumerate(lcs)])
    err = float((rows - torch.tensor(g["hidden"]).view(n, -1)).abs().max())
    assert err < 1e-4, err
    layer = 1
    projector = model.model.multi_modal_projector
    runs = []
    for keep in peers.ALM_KEEPS:
        kept_all, dropped = [], []
        first = 0
        for b, lc in enumerate(lcs):
            nv = (lc - 2) // 2 + 1
            w = out.attentions[layer - 1][b].double()
            a = w[:, :lc, :].sum(1).mean(0)
            s = ((a[0:2 * nv:2] + a[1:2 * nv:2]) / 2).float()
            k = peers.budget(keep, nv)
            kept = peers.topk([float(x) for x in s], k)
            frames = torch.tensor([f for p in kept for f in (2 * p, 2 * p + 1)])
            x = out.hidden_states[layer][b:b + 1, frames]
            for lay in tower.layers[layer:]:
                x = layer_out(lay(x, attention_mask=None))
            x = x[0].view(len(kept), 2, -1).mean(1)
            dropped.append(tower.layer_norm(x))
            kept_all += [first + p for p in kept]
            first += nv
        emb = projector(torch.cat(dropped))
        ee = torch.cat([e[:a0], emb, e[a0 + n:]])
        ids, ended, _ = peers.greedy_recompute(model, ee, eos)
        runs.append({"keep": keep, "layer": layer, "kept": kept_all, "ids": ids, "ended": ended})
        print(f"{name} encoderdrop L{layer} {keep}: k {len(kept_all)}, ids {ids} (ended {ended})")
    return {"golden": golden, "runs": runs}


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
    from transformers import (AudioFlamingo3ForConditionalGeneration,
                              Qwen2AudioForConditionalGeneration)
    toys = {
        "qwen2-audio-tiny": alm("qwen2-audio-tiny", "qwen2_audio_padded.json",
                                Qwen2AudioForConditionalGeneration),
        "af3-tiny": alm("af3-tiny", "af3_two_windows.json", AudioFlamingo3ForConditionalGeneration),
    }
    with open(os.path.join(peers.ALM, "encoderdrop.json"), "w") as fh:
        json.dump(toys, fh)
    path = os.path.join(peers.GOLDEN, "encoderdrop.json")
    with open(path, "w") as fh:
        json.dump(result, fh)
    print(path, os.path.getsize(path), "bytes")
    print("notes:" if peers.NOTES else "notes: none")
    for note in peers.NOTES:
        print("  " + note)


if __name__ == "__main__":
    main()
