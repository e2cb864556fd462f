"""Golden fixtures for the paper's model families (Qwen2-Audio, Audio Flamingo 3) at toy size.

Builds tiny random models with transformers (eager attention, f32), saves them the way the
published checkpoints are laid out, and records what transformers computes on real audio:
pooled encoder output, pooled received-attention scores and keys (SPEC.md section 2), merged
input embeddings, last-position logits and greedy ids for the full and for pruned inputs.

  tests/data/alm/qwen2-audio-tiny/  hub layout: `audio_tower.*`, `language_model.model.*`,
                                     `language_model.lm_head.weight`, sparse hub-style config
                                     (Whisper names, top-level rope_theta), bf16, two shards
  tests/data/alm/af3-tiny/          transformers-5 names (`model.audio_tower.*`,
                                     `model.language_model.*`, `lm_head.weight`) and config
                                     (rope_parameters, layer_types), bf16, two shards
  tests/data/alm/*.json             the reference values

Weights are rounded to bf16 before anything is computed, so the bf16 files hold exactly the
weights the references were computed with (in f32).

Run by hand, never in CI (needs torch + transformers 5, e.g. the .venv-bench of
scripts/bench-baseline.py):  .venv-bench/bin/python scripts/make-alm-fixtures.py
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
)

torch.set_grad_enabled(False)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "alm")
CLIP = os.path.join(ROOT, "assets", "jfk.wav")
NEW_TOKENS = 12
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"

TEXT = dict(
    model_type="qwen2",
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rope_theta=1e4,
    tie_word_embeddings=False,
)

CORPUS = [
    "And so my fellow Americans, ask not what your country can do for you.",
    "Describe the audio. What is said in the recording? Answer yes or no.",
    "A man speaks to a crowd while people applaud in the background.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Birds sing, a car passes by, and music plays from a radio.",
] * 20


def tokenizer(specials):
    """A byte-level BPE with the model's special tokens first (ids 0..len-1)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def bf16_round(model):
    for p in model.parameters():
        p.copy_(p.to(torch.bfloat16).to(torch.float32))


def k_of(n, keep):
    return max(1, min(n, int(math.floor(keep * n + 0.5))))


def order(scores, idx):
    return sorted(idx, key=lambda i: (-scores[i], i))


def topk(scores, k):
    return sorted(order(scores, range(len(scores)))[:k])


def segmentwise(scores, k, s):
    n = len(scores)
    s = min(s, k, n)
    kept = []
    for j in range(s):
        lo, hi = (j * n) // s, ((j + 1) * n) // s
        kept += order(scores, range(lo, hi))[: k // s]
    return sorted(kept)


class Capture:
    """Last encoder layer's attention weights and key projections, via forward hooks."""

    def __init__(self, tower):
        last = tower.layers[-1].self_attn
        self.weights, self.keys = None, None
        last.register_forward_hook(self._attn)
        last.k_proj.register_forward_hook(self._k)

    def _attn(self, _m, _i, out):
        self.weights = out[1]

    def _k(self, _m, _i, out):
        self.keys = out


def features(chunks, fe):
    f = fe(chunks, sampling_rate=16000, return_attention_mask=True, padding="max_length",
           return_tensors="pt")
    return f["input_features"], f["attention_mask"]


def pooled_scores_keys(cap, frame_lengths, heads):
    """Per window: valid pooled scores and keys, concatenated in time order."""
    scores, keys, n_valid = [], [], []
    for b, L in enumerate(frame_lengths):
        lc = (L - 1) // 2 + 1
        n = (lc - 2) // 2 + 1
        w = cap.weights[b].double()  # (H, T, T)
        a = w[:, :lc, :].sum(1).mean(0)  # received attention, (T,)
        s = (a[0 : 2 * n : 2] + a[1 : 2 * n : 2]) / 2
        t = cap.keys.shape[1]
        k = cap.keys[b].view(t, heads, -1).mean(1)
        kp = (k[0 : 2 * n : 2] + k[1 : 2 * n : 2]) / 2
        scores.append(s.float())
        keys.append(kp)
        n_valid.append(n)
    return torch.cat(scores), torch.cat(keys), n_valid


def greedy(model, embeds):
    """Greedy ids from input embeddings, recomputing the whole sequence each step (exact)."""
    lm, head = model.model.language_model, model.lm_head
    ids, logits0 = [], None
    e = embeds
    for step in range(NEW_TOKENS):
        h = lm(inputs_embeds=e[None]).last_hidden_state[0, -1]
        logits = head(h)
        if step == 0:
            logits0 = logits
        nxt = int(torch.argmax(logits))
        ids.append(nxt)
        e = torch.cat([e, lm.embed_tokens(torch.tensor([nxt]))], 0)
    return ids, logits0


def case(model, tok, kind, audio_tok, prompt_text, offset, chunks, fe, heads, runs, check):
    feats, mask = features(chunks, fe)
    lengths = [int(m.sum()) for m in mask]
    n_total = sum(((L - 1) // 2 + 1 - 2) // 2 + 1 for L in lengths)
    audio_id = tok.token_to_id(audio_tok)
    if kind == "qwen2_audio":
        before = SYSTEM + "Audio 1: <|audio_bos|>"
        after = "<|audio_eos|>\n" + prompt_text + "<|im_end|>\n<|im_start|>assistant\n"
    else:
        before = SYSTEM
        after = prompt_text + "<|im_end|>\n<|im_start|>assistant\n"
    pre = tok.encode(before, add_special_tokens=False).ids
    post = tok.encode(after, add_special_tokens=False).ids
    cap = Capture(model.model.audio_tower)

    # transformers' own path, with every placeholder: the logits our manual path must match.
    ids_full = torch.tensor([pre + [audio_id] * n_total + post])
    if kind == "qwen2_audio":
        out = model(input_ids=ids_full, input_features=feats, feature_attention_mask=mask)
    else:
        out = model(input_ids=ids_full, input_features=feats, input_features_mask=mask)
    model_logits = out.logits[0, -1]

    scores, keys, n_valid = pooled_scores_keys(cap, lengths, heads)
    tower = model.model.audio_tower
    if kind == "qwen2_audio":
        # Recompute the pooled encoder output with the same mask the model built.
        hidden = tower_hidden_qwen(model, feats, mask)
    else:
        hidden = tower(feats, input_features_mask=mask).last_hidden_state
    rows = torch.cat([hidden[b, :n] for b, n in enumerate(n_valid)])  # (N, d)
    assert rows.shape[0] == n_total == scores.shape[0]
    projected = model.model.multi_modal_projector(rows)
    embed = model.model.language_model.embed_tokens

    result = dict(
        kind=kind,
        prompt=prompt_text,
        offset_samples=offset,
        n_samples=sum(len(c) for c in chunks),
        window_samples=fe.n_samples,
        n_valid=n_valid,
        hidden=rows.flatten().tolist(),
        d_model=rows.shape[1],
        scores=scores.tolist(),
        keys=keys.flatten().tolist(),
        runs=[],
    )
    for method, keep, segments in runs:
        if method == "full":
            kept = list(range(n_total))
            k = n_total
        elif method == "topk":
            k = k_of(n_total, keep)
            kept = topk(scores.tolist(), k)
        else:
            k = k_of(n_total, keep)
            kept = segmentwise(scores.tolist(), k, segments)
        ids = pre + [audio_id] * len(kept) + post
        e = embed(torch.tensor(ids)).clone()
        e[len(pre) : len(pre) + len(kept)] = projected[kept]
        gen, logits = greedy(model, e)
        if method == "full":
            err = float((logits - model_logits).abs().max())
            assert err < 1e-5, f"manual path differs from transformers' by {err}"
            check.append(err)
        result["runs"].append(dict(
            method=method, keep=keep, segments=segments, k=k, kept=kept, input_ids=ids,
            embeds=e.flatten().tolist(), last_logits=logits.tolist(), generated=gen))
    return result


def tower_hidden_qwen(model, feats, mask):
    from transformers.masking_utils import create_bidirectional_mask

    tower = model.model.audio_tower
    lc, _ = tower._get_feat_extract_output_lengths(mask.sum(-1))
    t = (feats.shape[-1] - 2) // 2 + 1
    m2 = (torch.arange(t)[None, :] < lc[:, None]).long()
    m4 = create_bidirectional_mask(config=tower.config, inputs_embeds=torch.zeros(feats.shape[0], t, 1),
                                   attention_mask=m2)
    return tower(feats, attention_mask=m4).last_hidden_state


def hub_name(k):
    """transformers-5 module names -> the hub's legacy layout (`language_model.model.*`)."""
    for old, new in (("model.audio_tower.", "audio_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector."),
                     ("model.language_model.", "language_model.model."),
                     ("lm_head.", "language_model.lm_head.")):
        if k.startswith(old):
            return new + k[len(old):]
    return k


def write_model(model, tok, model_dir, config, eos_ids, hub):
    """bf16 weights in two shards with an index; `hub` picks the legacy names, else the v5 ones."""
    shutil.rmtree(model_dir, ignore_errors=True)
    os.makedirs(model_dir)
    state = {(hub_name(k) if hub else k): v.to(torch.bfloat16).contiguous()
             for k, v in model.state_dict().items()}
    names = sorted(state)
    half = len(names) // 2
    weight_map = {}
    for i, ns in enumerate((names[:half], names[half:])):
        f = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({n: state[n] for n in ns}, os.path.join(model_dir, f), metadata={"format": "pt"})
        weight_map.update({n: f for n in ns})
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, fh, indent=1)
    with open(os.path.join(model_dir, "config.json"), "w") as fh:
        json.dump(config, fh, indent=1)
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "generation_config.json"), "w") as fh:
        json.dump({"eos_token_id": eos_ids, "do_sample": False}, fh, indent=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    samples, sr = sf.read(CLIP, dtype="float32")
    assert sr == 16000
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=2)
    window = fe.n_samples
    offset = 16000  # both cases start 1 s into jfk
    checks = []

    # --- Qwen2-Audio: one padded window (1.3 s of audio in a 2 s window) ---
    torch.manual_seed(0)
    qtok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>",
                      "<|audio_bos|>", "<|audio_eos|>"])
    qcfg = Qwen2AudioConfig(
        audio_config=dict(d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
                          num_mel_bins=128, max_source_positions=100),
        text_config=TEXT, audio_token_index=qtok.token_to_id("<|AUDIO|>"))
    qcfg._attn_implementation = "eager"
    q = Qwen2AudioForConditionalGeneration(qcfg).eval()
    q.config._attn_implementation = "eager"
    bf16_round(q)
    clip = samples[offset : offset + 20800]
    qres = case(q, qtok, "qwen2_audio", "<|AUDIO|>", "Describe the audio.", offset, [clip], fe, 4,
                [("full", 1.0, None), ("topk", 0.5, None), ("segmentwise", 0.25, 3)], checks)
    hub_config = {
        "architectures": ["Qwen2AudioForConditionalGeneration"],
        "model_type": "qwen2_audio",
        "audio_token_index": qcfg.audio_token_index,
        "audio_config": {"model_type": "qwen2_audio_encoder", "d_model": 32, "encoder_layers": 2,
                         "encoder_attention_heads": 4, "encoder_ffn_dim": 64, "num_mel_bins": 128,
                         "max_source_positions": 100, "activation_function": "gelu"},
        "text_config": {"model_type": "qwen2", "vocab_size": 512, "hidden_size": 64,
                        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "max_position_embeddings": 2048, "rope_theta": 10000.0,
                        "sliding_window": 2048, "use_sliding_window": False,
                        "tie_word_embeddings": False, "rms_norm_eps": 1e-6},
        "torch_dtype": "bfloat16",
    }
    write_model(q, qtok, os.path.join(OUT, "qwen2-audio-tiny"), hub_config,
                [qtok.token_to_id("<|im_end|>"), qtok.token_to_id("<|endoftext|>")], hub=True)
    with open(os.path.join(OUT, "qwen2_audio_padded.json"), "w") as fh:
        json.dump(qres, fh)

    # --- Audio Flamingo 3: two windows (2 s + 1.1 s) ---
    torch.manual_seed(1)
    atok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"])
    acfg = AudioFlamingo3Config(
        audio_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          num_mel_bins=128, max_source_positions=100),
        text_config=dict(TEXT, rms_norm_eps=1e-6, rope_theta=1e6),
        audio_token_id=atok.token_to_id("<sound>"))
    acfg._attn_implementation = "eager"
    a = AudioFlamingo3ForConditionalGeneration(acfg).eval()
    a.config._attn_implementation = "eager"
    bf16_round(a)
    clip = samples[offset : offset + window + 17600]
    chunks = [clip[:window], clip[window:]]
    ares = case(a, atok, "audioflamingo3", "<sound>", "What is said?", offset, chunks, fe, 4,
                [("full", 1.0, None), ("topk", 0.5, None), ("segmentwise", 0.25, 4)], checks)
    v5_config = json.loads(a.config.to_json_string(use_diff=True))
    v5_config["dtype"] = "bfloat16"
    write_model(a, atok, os.path.join(OUT, "af3-tiny"), v5_config,
                [atok.token_to_id("<|im_end|>"), atok.token_to_id("<|endoftext|>")], hub=False)
    with open(os.path.join(OUT, "af3_two_windows.json"), "w") as fh:
        json.dump(ares, fh)
    print("manual vs transformers logits, max abs:", checks)
    for r in qres["runs"] + ares["runs"]:
        print(r["method"], r["keep"], r["k"], r["generated"])


if __name__ == "__main__":
    main()
