#!/usr/bin/env python3
"""Reference runs of `ltbm`, `dart` and `samp` on Whisper tiny.en and real clips
(tests/data/golden/peer_prune.json), and on the toy Qwen2-Audio and AF3 (tests/data/alm/
peer_prune.json).

The encoder is transformers' (eager, f32) on the CTranslate2 tiny.en that `prunescope fetch
whisper-tiny.en` prints, converted with `prunescope convert`, for assets/jfk.wav and
tests/data/arctic_a0007.wav:

- `scores`: the last layer's attention weights summed over the n valid query rows, mean over
  heads, at the n valid columns (docs/SPEC.md section 2);
- keys: the last layer's key projection of its layer-normed input, averaged over heads, the n
  valid rows;
- groups: the naive rules of scripts/make-peer-prune-fixtures.py (LTBM window 2, DART 4
  pivots, Samp threshold 0.85 within 1500-token windows), at keep 0.5, 0.25 and 0.1;
- each kept token's row: its group's mean of the encoder's output rows (LTBM equal weights,
  Samp score weights), in time order, then every padding row (the silence context up to the
  window's end); greedy decode as scripts/make-peer-fixtures.py section C does without pruning.

The toy models: the pooled encoder output, scores and keys their golden files hold
(tests/data/alm/qwen2_audio_padded.json, af3_two_windows.json, from transformers), the same
rules (Samp's windows: 30 s of tokens), each kept group's mean of the pooled rows through the
model's projector in place of the audio placeholders of the golden full run's input
embeddings, then its greedy decode (scripts/make-peer-fixtures.py `greedy_recompute`).

Run by hand, never in CI (needs torch + transformers 5 + numpy), after `cargo build`:
    /tmp/v/bin/python scripts/make-peer-prune-golden.py
"""
import importlib.util
import json
import math
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import torch
from tokenizers import Tokenizer
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = load("peers", "make-peer-fixtures.py")
rules = load("rules", "make-peer-prune-fixtures.py")
KEEPS = (0.5, 0.25, 0.1)


def groups_of(method, keys, scores, keep, window=1500):
    n = len(keys)
    k = rules.budget(keep, n)
    if method == "ltbm":
        return [(g, None) for g in rules.ltbm(keys, k, 2)]
    if method == "dart":
        return [([t], None) for t in rules.dart(keys, k, 4)]
    w = [float(s) if np.isfinite(s) and s > 0 else 0.0 for s in scores]
    return [(g, w) for g in rules.samp(keys, scores, keep, 0.85, window)]


def merged_rows(hidden, groups):
    rows = []
    for g, w in groups:
        if w is None:
            rows.append(hidden[g].mean(0))
        else:
            ws = np.array([w[t] for t in g])
            ws = ws / ws.sum() if ws.sum() > 0 else np.full(len(g), 1 / len(g))
            rows.append((torch.tensor(ws)[:, None] * hidden[g]).sum(0))
    return torch.stack(rows)


def alm(name, golden, cls):
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
    dm = g["d_model"]
    hidden = torch.tensor(g["hidden"], dtype=torch.float64).view(n, dm)
    scores = np.array(g["scores"], dtype=np.float32)
    keys = np.array(g["keys"], dtype=np.float32).reshape(n, -1)
    # Samp's windows: 30 s of the model's tokens.
    frames = g["window_samples"] // 160
    per_window = ((frames - 1) // 2 + 1 - 2) // 2 + 1
    spt = g["window_samples"] / 16000 / per_window
    window = max(1, int(np.floor(30 / spt + 0.5)))
    projector = model.model.multi_modal_projector
    # The projector of every pooled row gives the golden embeddings back: the check of the path.
    err = float((projector(hidden.float()) - e[a0:a0 + n]).abs().max())
    assert err < 1e-5, err
    runs = []
    for method in ("ltbm", "dart", "samp"):
        for keep in peers.ALM_KEEPS:
            groups = groups_of(method, keys, scores, keep, window)
            emb = projector(merged_rows(hidden, groups).float())
            ee = torch.cat([e[:a0], emb, e[a0 + n:]])
            ids, ended, _ = peers.greedy_recompute(model, ee, eos)
            runs.append({"method": method, "keep": keep, "kept": [gr[0] for gr, _ in groups],
                         "groups": [gr for gr, _ in groups], "ids": ids, "ended": ended})
            print(f"{name} {method} {keep}: k {len(groups)}, ids {ids} (ended {ended})")
    # SpeechPrune: the largest cosine (at least 0) of each audio embedding with the embeddings
    # after the audio; layer 0's attention from those rows with the signs of its rotated
    # queries and keys (causal, softmax in f32), summed over them, mean over heads.
    after = e[a0 + n:]
    audio_e = e[a0:a0 + n]
    cos = torch.nn.functional.cosine_similarity(audio_e[:, None, :], after[None, :, :], dim=-1)
    sim = cos.max(1).values.clamp(min=0).numpy()
    man = peers.ManualLM(model)
    q, k, _ = man.qkv(0, e, list(range(T)))
    q, k = torch.sign(q), torch.sign(k)
    a = man.layers[0].self_attn
    kk = peers.repeat_kv(k, a.num_key_value_groups)
    w = torch.matmul(q, kk.transpose(2, 3)) * a.scaling
    causal = torch.arange(T)[None, :] <= torch.arange(T)[:, None]
    w = torch.softmax(w.masked_fill(~causal, float("-inf")), dim=-1, dtype=torch.float32)[0]
    att = w[:, a0 + n:, :].sum(1).mean(0)[a0:a0 + n].double().numpy()
    per = int(np.floor(1 / spt + 0.5))
    for keep in peers.ALM_KEEPS:
        kept = rules.speechprune(sim, att, rules.budget(keep, n), per)
        ee = torch.cat([e[:a0], e[a0:a0 + n][torch.tensor(kept)], e[a0 + n:]])
        ids, ended, _ = peers.greedy_recompute(model, ee, eos)
        runs.append({"method": "speechprune", "keep": keep, "kept": kept, "ids": ids,
                     "ended": ended, "similarity": [peers.g7(x) for x in sim],
                     "attention": [peers.g7(x) for x in att]})
        print(f"{name} speechprune {keep}: k {len(kept)}, kept {kept[:8]}..., ids {ids}")
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
        heads = cfg["encoder_attention_heads"]
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        fe = WhisperFeatureExtractor(feature_size=cfg["num_mel_bins"], sampling_rate=16000)
        for rel in peers.CLIPS:
            audio, sr = sf.read(os.path.join(ROOT, rel), dtype="float32")
            assert sr == 16000 and audio.ndim == 1 and len(audio) <= peers.WIN
            clip = os.path.basename(rel)
            feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
            out = enc(feats, output_attentions=True, output_hidden_states=True)
            n = min(1500, math.ceil(math.ceil(len(audio) / 160) / 2))
            att = out.attentions[-1][0].double()
            scores = att[:, :n, :n].sum(1).mean(0).float().numpy()
            last = enc.layers[-1]
            k = last.self_attn.k_proj(last.self_attn_layer_norm(out.hidden_states[-2]))[0]
            keys = k.reshape(1500, heads, -1).mean(1)[:n].numpy().astype(np.float32)
            hidden = out.last_hidden_state[0].double()
            runs = []
            for method in ("ltbm", "dart", "samp"):
                for keep in KEEPS:
                    groups = groups_of(method, keys, scores, keep)
                    memory = torch.cat([merged_rows(hidden, groups), hidden[n:]]).float()[None]
                    ids, _, _ = peers.whisper_fastv(model, cfg, memory, len(groups), None)
                    text = tok.decode(ids, skip_special_tokens=True).strip()
                    runs.append({"method": method, "keep": keep, "kept": [g[0] for g, _ in groups],
                                 "groups": [g for g, _ in groups], "ids": ids, "text": text})
                    print(f"{clip} {method} {keep}: k {len(groups)}, {len(ids)} ids: {text!r}")
            result[clip] = {"n": n, "runs": runs}
    path = os.path.join(peers.GOLDEN, "peer_prune.json")
    with open(path, "w") as fh:
        json.dump(result, fh)
    print(path, os.path.getsize(path), "bytes")
    toys = {
        "qwen2-audio-tiny": alm("qwen2-audio-tiny", "qwen2_audio_padded.json",
                                Qwen2AudioForConditionalGeneration),
        "af3-tiny": alm("af3-tiny", "af3_two_windows.json", AudioFlamingo3ForConditionalGeneration),
    }
    path = os.path.join(peers.ALM, "peer_prune.json")
    with open(path, "w") as fh:
        json.dump(toys, fh)
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
