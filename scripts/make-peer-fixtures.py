#!/usr/bin/env python3
"""Reference runs of the peer pruning methods: FastV and prompt-aware (SpeechPrune-style).

Makes two fixtures:

  tests/data/alm/peers.json      {model: {"golden": file, "runs": [...]}} for the toy models of
                                 tests/data/alm (qwen2-audio-tiny with qwen2_audio_padded.json,
                                 af3-tiny with af3_two_windows.json), on the golden `full` run's
                                 input (same clip, features, prompt and input embeddings, all n
                                 audio placeholders, T positions). Runs: method "fastv" at layer
                                 L = 0 and 1 (the toy LMs have 2 layers), keep 0.5 and 0.25; method
                                 "promptaware" at keep 0.5 and 0.25.
  tests/data/golden/fastv.json   {clip: {"n": n, "scores": [...], "runs": [...]}}: FastV adapted to
                                 Whisper on the CTranslate2 tiny.en that `prunescope fetch
                                 whisper-tiny.en` prints, converted with `prunescope convert`
                                 (transformers, eager, f32), for assets/jfk.wav and
                                 tests/data/arctic_a0007.wav, keep 0.5, 0.25 and 0.1.

Common definitions. K = budget(keep, n) = clamp(round-half-up(keep * n), 1, n)
= max(1, min(n, floor(keep * n + 0.5))). top-K = the K highest scores, ties broken by the lower
index, returned sorted ascending. Floats are rounded to 7 significant digits.

A. FastV for the prefix models (Chen et al. 2024), layer L (0-based count of the LM layers that
   run on everything):
   - Layers 0..L-1 run on all T positions of the full input as usual (causal, positions 0..T-1).
   - Ranking (`scores`): the self-attention weights of LM layer L computed on the hidden states
     entering layer L at all T positions (eager: softmax of the scaled q.k, RoPE at the original
     positions, causal), the row of the last position T-1, mean over heads, at the n audio
     positions. `kept` = top-K of those (indices among the n audio tokens).
   - The kept sequence = every non-audio position + the kept audio positions, in original order.
     Layers L..last run only on it, each token at its ORIGINAL position id (RoPE), causal by
     sequence order. The KV caches of layers 0..L-1 keep only the kept positions' entries (the
     dropped audio tokens vanish from every layer's cache).
   - The first generated token comes from the last position's logits (`top5`: that step's five
     highest logits' ids, highest first); decoding continues greedily at positions T, T+1, ...,
     every layer attending to the kept entries plus the generated ones.
   Implemented as a manual loop over the model's own modules (embedding -> decoder layers ->
   norm -> lm_head) with explicit RoPE position embeddings from its rotary module and our own KV
   lists; without pruning the loop reproduces the golden full run's last logits (< 1e-4) and
   `generated`, and its attention weights equal transformers' output_attentions.
B. Prompt-aware (SpeechPrune-style, Lin et al. 2025): LM layer 0's attention weights on all T
   positions of the full input (eager, causal, heads separate); rows = every position after the
   last audio placeholder (the text after the audio through the end of the prompt); column sums
   over those rows at the audio positions; mean over heads -> `scores`, one per audio token.
   `kept` = top-K. Then decoded exactly like the golden pruned runs: the kept audio tokens'
   embeddings in order between the unchanged text embeddings, contiguous positions, the
   standard model recomputing the whole sequence each step.
   Both methods: greedy, at most 12 new tokens, stopping at the model's end ids
   (generation_config eos_token_id); `ids` exclude the end id, `ended` says whether one came.
C. FastV adapted to Whisper (our adaptation): one 30 s window, memory = all n valid encoder rows
   followed by the 50-row silence tail (the encoder rows right after the valid ones). Greedy
   decode as ../shared/tools/reference.py does (prompt [SOT, NOTIMESTAMPS], the config's suppress
   lists, begin-suppress at the first step, timestamps masked, 224 tokens at most, stop at EOT).
   The step whose query is NOTIMESTAMPS (position 1) chooses the first generated token with the
   full memory; that step's cross-attention weights (softmax over the whole memory, tail
   included), mean over all heads of all decoder layers, at the n valid columns = `scores`;
   `kept` = top-K. From the next step on (the one feeding the first generated token) every
   layer's cross-attention reads only the kept valid rows + the 50 tail rows (their keys and
   values, same order); the self-attention cache of the first step stays as computed. Decoded to
   the end; `text` = the ids decoded with the tokenizer, special tokens skipped, stripped.

Run by hand, never in CI (needs torch + transformers 5, e.g. .venv-bench of
scripts/bench-baseline.py), after `cargo build`:
    .venv-bench/bin/python scripts/make-peer-fixtures.py
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import soundfile as sf
import torch
from tokenizers import Tokenizer
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb, repeat_kv

torch.set_grad_enabled(False)
torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "debug", "prunescope")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
ALM = os.path.join(ROOT, "tests", "data", "alm")
SOT, NOTS, EOT = 50257, 50362, 50256
WIN = 30 * 16000
TAIL = 50
MAX_TOKENS = 224
NEW_TOKENS = 12
CLIPS = ["assets/jfk.wav", "tests/data/arctic_a0007.wav"]
ALM_KEEPS = (0.5, 0.25)
WHISPER_KEEPS = (0.5, 0.25, 0.1)
NOTES = []  # surprising things, printed at the end


def g7(x):
    return float(f"{x:.7g}")


def budget(keep, n):
    return max(1, min(n, int(math.floor(keep * n + 0.5))))


def topk(scores, k):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


def tie_note(what, scores, k):
    """Notes a tie at the top-K boundary (where the lower-index rule decides) or any exact tie."""
    s = sorted(scores, reverse=True)
    if k < len(s) and s[k - 1] == s[k]:
        NOTES.append(f"{what}: tie at the top-K boundary (score {s[k - 1]!r})")
    if len(set(scores)) < len(scores):
        NOTES.append(f"{what}: {len(scores) - len(set(scores))} exactly tied scores")


# --- the prefix models' language model, by hand -------------------------------------------------

class ManualLM:
    """The LM's own modules run one layer at a time with our own KV lists (post-RoPE keys)."""

    def __init__(self, model):
        self.lm, self.head = model.model.language_model, model.lm_head
        cfg = self.lm.config
        assert all(t == "full_attention" for t in cfg.layer_types), cfg.layer_types
        self.layers = list(self.lm.layers)[: cfg.num_hidden_layers]

    def qkv(self, i, h, pos):
        """Layer i's RoPE'd queries, keys, values for hidden states h (S, d) at positions pos."""
        ly = self.layers[i]
        a = ly.self_attn
        x = ly.input_layernorm(h)[None]
        shape = (1, h.shape[0], -1, a.head_dim)
        q = a.q_proj(x).view(shape).transpose(1, 2)
        k = a.k_proj(x).view(shape).transpose(1, 2)
        v = a.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = self.lm.rotary_emb(x, torch.tensor(pos)[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q, k, v

    def attend(self, i, q, k, v):
        """Eager attention of queries q over keys/values k, v whose last q.shape[2] entries are the
        queries' own (causal among them, everything before visible). Returns output, weights."""
        a = self.layers[i].self_attn
        s, m = q.shape[2], k.shape[2]
        kk, vv = repeat_kv(k, a.num_key_value_groups), repeat_kv(v, a.num_key_value_groups)
        w = torch.matmul(q, kk.transpose(2, 3)) * a.scaling
        allowed = torch.arange(m)[None, :] <= (m - s + torch.arange(s))[:, None]
        w = w.masked_fill(~allowed, float("-inf"))
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, vv).transpose(1, 2).reshape(1, s, -1)
        return a.o_proj(o)[0], w[0]  # (S, d), (H, S, M)

    def finish(self, i, h, o):
        ly = self.layers[i]
        h = h + o
        return h + ly.mlp(ly.post_attention_layernorm(h[None]))[0]

    def layer(self, i, h, pos, cache):
        """Runs layer i on h at positions pos, appending to cache[i]; returns new h, weights."""
        q, k, v = self.qkv(i, h, pos)
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        o, w = self.attend(i, q, k, v)
        return self.finish(i, h, o), w

    def logits(self, h_last):
        return self.head(self.lm.norm(h_last[None]))[0]

    def run(self, e, audio_pos, prune_layer=None, keep=None, eos=(), weights=None):
        """FastV (section A) at layer prune_layer; prune_layer None = no pruning. Returns
        (ids, ended, first logits, scores, kept)."""
        T = e.shape[0]
        n_layers = len(self.layers)
        cache = [None] * n_layers
        h, pos = e, list(range(T))
        scores, kept = None, None
        start = n_layers if prune_layer is None else prune_layer
        for i in range(start):
            h, w = self.layer(i, h, pos, cache)
            if weights is not None:
                weights.append(w)
        if prune_layer is not None:
            q, k, _ = self.qkv(prune_layer, h, pos)
            _, w = self.attend(prune_layer, q, k, torch.zeros_like(k))
            row = w[:, T - 1, :].double().mean(0)  # (T,) mean over heads
            scores = [float(row[p]) for p in audio_pos]
            kept = topk(scores, budget(keep, len(audio_pos)))
            dropped = set(audio_pos) - {audio_pos[j] for j in kept}
            seq = [p for p in range(T) if p not in dropped]
            idx = torch.tensor(seq)
            for i in range(prune_layer):
                cache[i] = (cache[i][0].index_select(2, idx), cache[i][1].index_select(2, idx))
            h, pos = h[idx], seq
            for i in range(prune_layer, n_layers):
                h, _ = self.layer(i, h, pos, cache)
        logits = self.logits(h[-1])
        first = logits
        ids, ended = [], False
        for step in range(NEW_TOKENS):
            nxt = int(torch.argmax(logits))
            if nxt in eos:
                ended = True
                break
            ids.append(nxt)
            if step == NEW_TOKENS - 1:
                break
            h = self.lm.embed_tokens(torch.tensor([nxt]))
            p = [T + step]
            for i in range(n_layers):
                h, _ = self.layer(i, h, p, cache)
            logits = self.logits(h[-1])
        return ids, ended, first, scores, kept


def greedy_recompute(model, e, eos):
    """The golden pruned runs' decoding (make-alm-fixtures.py `greedy`), stopping at end ids."""
    lm, head = model.model.language_model, model.lm_head
    ids, ended, first = [], False, None
    for _ in range(NEW_TOKENS):
        logits = head(lm(inputs_embeds=e[None]).last_hidden_state[0, -1])
        if first is None:
            first = logits
        nxt = int(torch.argmax(logits))
        if nxt in eos:
            ended = True
            break
        ids.append(nxt)
        e = torch.cat([e, lm.embed_tokens(torch.tensor([nxt]))], 0)
    return ids, ended, first


def check_generated(what, ids, ended, gen, eos):
    """ids (stopped at an end id) against a golden `generated` (12 ids, never stopped)."""
    assert ids == gen[: len(ids)], (what, ids, gen)
    assert (ended and gen[len(ids)] in eos) or (not ended and len(ids) == len(gen)), (what, ids, gen)


def top5(logits):
    return [int(i) for i in torch.topk(logits, 5).indices]


def alm(name, golden, cls):
    d = os.path.join(ALM, name)
    g = json.load(open(os.path.join(ALM, golden)))
    model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    audio_id = json.load(open(os.path.join(d, "config.json"))).get(
        "audio_token_index", None) or model.config.audio_token_id
    eos = json.load(open(os.path.join(d, "generation_config.json")))["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    full = next(r for r in g["runs"] if r["method"] == "full")
    input_ids = full["input_ids"]
    T = len(input_ids)
    e = torch.tensor(full["embeds"], dtype=torch.float32).view(T, -1)
    audio_pos = [i for i, t in enumerate(input_ids) if t == audio_id]
    n = len(audio_pos)
    assert n == full["k"] and audio_pos == list(range(audio_pos[0], audio_pos[0] + n))
    man = ManualLM(model)
    n_layers = len(man.layers)

    # Verification: the manual loop without pruning = the golden full run, and its attention
    # weights = transformers' eager output_attentions.
    weights = []
    ids, ended, first, _, _ = man.run(e, audio_pos, eos=eos, weights=weights)
    err = float((first - torch.tensor(full["last_logits"])).abs().max())
    assert err < 1e-4, f"{name}: manual loop logits differ from the golden full run by {err}"
    check_generated(f"{name} manual full", ids, ended, full["generated"], eos)
    o = model.model.language_model(inputs_embeds=e[None], output_attentions=True)
    werr = max(float((w - a[0]).abs().max()) for w, a in zip(weights, o.attentions))
    assert werr < 1e-5, f"{name}: manual attention weights differ from transformers' by {werr}"
    print(f"{name}: T {T}, n {n}, manual loop vs golden full: logits max abs {err:.2e}, ids "
          f"{ids} (ended {ended}), attention weights vs transformers max abs {werr:.2e}")
    # The golden pruned runs' decoding, reproduced from the full embeddings (section B's decoder).
    for r in g["runs"]:
        seq = [p for p in range(T) if p not in set(audio_pos)
               or (p - audio_pos[0]) in set(r["kept"])]
        ee = e[torch.tensor(seq)]
        assert torch.equal(ee.flatten(), torch.tensor(r["embeds"], dtype=torch.float32)), r["method"]
        gids, gended, gfirst = greedy_recompute(model, ee, eos)
        check_generated(f"{name} golden {r['method']}", gids, gended, r["generated"], eos)
        gerr = float((gfirst - torch.tensor(r["last_logits"])).abs().max())
        assert gerr < 1e-5, (r["method"], gerr)
        print(f"  golden {r['method']} {r['keep']}: reproduced, ids {gids} (ended {gended})")
        # And the manual loop on the same pruned input (contiguous positions) agrees.
        mids, mended, mfirst, _, _ = man.run(ee, [], eos=eos)
        assert (mids, mended) == (gids, gended), (mids, gids)
        assert float((mfirst - gfirst).abs().max()) < 1e-4
    # FastV with keep 1.0 = the unpruned run (nothing dropped, at any layer).
    for L in range(n_layers):
        fids, fended, ffirst, _, fkept = man.run(e, audio_pos, L, 1.0, eos)
        assert fkept == list(range(n)) and (fids, fended) == (ids, ended)
        assert float((ffirst - first).abs().max()) < 1e-4

    runs = []
    for L in range(n_layers):
        for keep in ALM_KEEPS:
            k = budget(keep, n)
            fids, fended, ffirst, scores, kept = man.run(e, audio_pos, L, keep, eos)
            assert len(kept) == k
            tie_note(f"{name} fastv L{L} {keep}", scores, k)
            if fended:
                NOTES.append(f"{name} fastv L{L} {keep}: ended after {len(fids)} ids")
            runs.append({"method": "fastv", "layer": L, "keep": keep, "k": k, "kept": kept,
                         "scores": [g7(s) for s in scores], "ids": fids, "ended": fended,
                         "top5": top5(ffirst)})
            print(f"{name} fastv L{L} keep {keep}: k {k}, kept {kept[:8]}..., ids {fids} "
                  f"(ended {fended}), top5 {top5(ffirst)}")
    # Section B: layer 0's attention on the full input, rows after the last audio placeholder.
    w0 = weights[0].double()  # (H, T, T)
    after = list(range(audio_pos[-1] + 1, T))
    col = w0[:, after, :].sum(1).mean(0)
    pa_scores = [float(col[p]) for p in audio_pos]
    for keep in ALM_KEEPS:
        k = budget(keep, n)
        kept = topk(pa_scores, k)
        tie_note(f"{name} promptaware {keep}", pa_scores, k)
        seq = [p for p in range(T) if p not in set(audio_pos) or (p - audio_pos[0]) in set(kept)]
        pids, pended, pfirst = greedy_recompute(model, e[torch.tensor(seq)], eos)
        if pended:
            NOTES.append(f"{name} promptaware {keep}: ended after {len(pids)} ids")
        runs.append({"method": "promptaware", "keep": keep, "k": k, "kept": kept,
                     "scores": [g7(s) for s in pa_scores], "ids": pids, "ended": pended,
                     "top5": top5(pfirst)})
        print(f"{name} promptaware keep {keep}: k {k}, rows {after[0]}..{after[-1]}, kept "
              f"{kept[:8]}..., ids {pids} (ended {pended}), top5 {top5(pfirst)}")
    return {"golden": golden, "runs": runs}


# --- Whisper ------------------------------------------------------------------------------------

def whisper_fastv(model, cfg, memory, n, keep):
    """Section C; keep None = no pruning. Returns (ids, scores, kept)."""
    suppress = torch.tensor(cfg["suppress_tokens"])
    suppress_begin = torch.tensor(cfg["begin_suppress_tokens"])
    ids, past, feed = [], None, [SOT, NOTS]
    scores, kept = None, None
    enc = memory
    for step in range(MAX_TOKENS):
        out = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([feed]),
                    past_key_values=past, use_cache=True, output_attentions=(step == 0))
        past, logits = out.past_key_values, out.logits[0, -1].clone()
        if step == 0:
            cross = torch.cat([a[0, :, -1, :].double() for a in out.cross_attentions])  # (L*H, M)
            assert cross.shape[1] == memory.shape[1]
            mean = cross.mean(0)
            scores = [float(x) for x in mean[:n]]
            if keep is not None:
                kept = topk(scores, budget(keep, n))
                idx = torch.tensor(kept + list(range(n, memory.shape[1])))
                cc = past.cross_attention_cache
                for layer in cc.layers:
                    layer.keys = layer.keys.index_select(2, idx)
                    layer.values = layer.values.index_select(2, idx)
                enc = memory[:, idx]
        logits[suppress] = -float("inf")
        logits[NOTS + 1 :] = -float("inf")
        if step == 0:
            logits[suppress_begin] = -float("inf")
        nxt = int(logits.argmax())
        if nxt == EOT:
            break
        ids.append(nxt)
        feed = [nxt]
    if keep is not None:
        for layer in past.cross_attention_cache.layers:
            assert layer.keys.shape[2] == len(kept) + memory.shape[1] - n
    return ids, scores, kept


def golden_text(clip, method):
    for d in (GOLDEN, os.path.join(ROOT, "..", "shared", "golden")):
        p = os.path.join(d, clip + ".json")
        if os.path.exists(p):
            g = json.load(open(p))
            return g["n"], next(r["text"] for r in g["runs"] if r["method"] == method)
    return None, None


def whisper(ct2_dir):
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf")
        subprocess.run([BINARY, "convert", ct2_dir, hf], check=True)
        cfg = json.load(open(os.path.join(hf, "config.json")))
        model = WhisperForConditionalGeneration.from_pretrained(
            hf, attn_implementation="eager", dtype=torch.float32).eval()
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        fe = WhisperFeatureExtractor(feature_size=cfg["num_mel_bins"], sampling_rate=16000)
        for rel in CLIPS:
            audio, sr = sf.read(os.path.join(ROOT, rel), dtype="float32")
            assert sr == 16000 and audio.ndim == 1 and len(audio) <= WIN, (rel, sr, audio.shape)
            clip = os.path.basename(rel)
            feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
            h = model.model.encoder(feats).last_hidden_state  # (1, 1500, d)
            n = min(1500, math.ceil(math.ceil(len(audio) / 160) / 2))
            memory = h[:, : min(1500, n + TAIL)]
            full_ids, scores, _ = whisper_fastv(model, cfg, memory, n, None)
            full_text = tok.decode(full_ids, skip_special_tokens=True).strip()
            gn, gtext = golden_text(os.path.splitext(clip)[0], "full")
            print(f"{clip}: n {n}, unpruned: {full_text!r}"
                  + ("" if gn is None else f", golden full n {gn}, text matches {gtext == full_text}"))
            if gn is not None:
                assert gn == n, (gn, n)
                if gtext != full_text:
                    NOTES.append(f"{clip}: unpruned text differs from the golden full run's")
            runs = []
            for keep in WHISPER_KEEPS:
                k = budget(keep, n)
                ids, s2, kept = whisper_fastv(model, cfg, memory, n, keep)
                assert s2 == scores and len(kept) == k
                assert ids[:1] == full_ids[:1]  # the first token is chosen with the full memory
                tie_note(f"{clip} fastv {keep}", scores, k)
                text = tok.decode(ids, skip_special_tokens=True).strip()
                if len(ids) == MAX_TOKENS:
                    NOTES.append(f"{clip} fastv {keep}: hit {MAX_TOKENS} tokens without EOT")
                runs.append({"clip": clip, "n": n, "keep": keep, "k": k, "kept": kept, "ids": ids,
                             "text": text})
                print(f"  keep {keep}: k {k}, kept {kept[:8]}..., {len(ids)} ids: {text!r}")
            out[clip] = {"n": n, "scores": [g7(s) for s in scores], "unpruned_ids": full_ids,
                         "unpruned_text": full_text, "runs": runs}
    return out


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"build the binary first: cargo build ({BINARY} is missing)")
    peers = {
        "qwen2-audio-tiny": alm("qwen2-audio-tiny", "qwen2_audio_padded.json",
                                Qwen2AudioForConditionalGeneration),
        "af3-tiny": alm("af3-tiny", "af3_two_windows.json", AudioFlamingo3ForConditionalGeneration),
    }
    ct2_dir = subprocess.run([BINARY, "fetch", "whisper-tiny.en"], check=True,
                             capture_output=True, text=True).stdout.strip()
    fastv = whisper(ct2_dir)
    with open(os.path.join(ALM, "peers.json"), "w") as fh:
        json.dump(peers, fh)
    with open(os.path.join(GOLDEN, "fastv.json"), "w") as fh:
        json.dump(fastv, fh)
    for p in ("alm/peers.json", "golden/fastv.json"):
        print(p, os.path.getsize(os.path.join(ROOT, "tests", "data", p)), "bytes")
    print("notes:" if NOTES else "notes: none")
    for note in NOTES:
        print("  " + note)


if __name__ == "__main__":
    main()
