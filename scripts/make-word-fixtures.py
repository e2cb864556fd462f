#!/usr/bin/env python3
"""Reference word timings and per-token attention maps (`analyze --words`).

Makes three fixtures:

  tests/data/golden/words.json            faster-whisper word timings for assets/jfk.wav,
                                          tests/data/arctic_a0007.wav and tests/data/jfk_x3.wav,
                                          on the same CTranslate2 tiny.en directory that
                                          `prunescope fetch whisper-tiny.en` prints (cpu, f32);
                                          greedy, without timestamps, each 30 s window decoded
                                          once with the prompt [SOT, NOTIMESTAMPS]; `_meta` holds
                                          the version and the settings. Each clip also has
                                          `padded`: the same with every window's samples padded
                                          with silence to 30 s before the log-mel (the encoder
                                          input transformers and prunescope use; the alignment is
                                          still cut to the window's content frames), whose tokens
                                          equal the golden vanilla runs'.
  tests/data/golden/token_attention.json  transformers (eager, f32) on the Hugging Face directory
                                          that `prunescope convert` writes: for jfk.wav and
                                          arctic_a0007.wav, the decoder's cross-attention of every
                                          generating step, for the vanilla run (all 1500 encoder
                                          rows) and for segmentwise keep 0.25, S = 10 (the golden
                                          run's kept rows, then the 50-row silence tail), decoded
                                          greedily as ../shared/tools/reference.py does. Row i is
                                          the query whose logits chose generated token i; the last
                                          row chose <|endoftext|>. Each row: softmax weights over
                                          the whole memory, averaged over the CT2 config's
                                          alignment heads (`map`), restricted to the audio columns
                                          (vanilla: the n valid tokens; pruned: the kept rows).
  tests/data/alm/token_attention.json     the toy Qwen2-Audio / AF3 models of tests/data/alm: for
                                          every run of their golden files, the language model's
                                          attention from each generating query to the audio
                                          placeholders (mean over all heads of all layers), on the
                                          golden's own input embeddings, greedy as
                                          scripts/make-alm-fixtures.py decodes (the ids are checked
                                          against the golden `generated`).

How CTranslate2 (4.8, src/models/whisper.cc `WhisperReplica::align`, src/dtw.cc,
src/ops/median_filter_cpu.cc) computes the alignment that faster-whisper's `find_alignment`
turns into words; it follows openai-whisper's `timing.find_alignment` step by step:
  - faster-whisper passes the *full* encoder output of the window (1500 rows), the tokenizer's
    sot_sequence (tiny.en: [SOT] only), the segment's text tokens (ids < EOT, timestamps
    dropped) and num_frames = the window's content mel frames (not 3000), median width 7.
  - align builds the teacher-forced input [*sot_sequence, NOTIMESTAMPS, *text, EOT] itself: it
    always appends <|notimestamps|> after the sot_sequence, whatever the generation prompt was.
    One forward pass of the decoder over that sequence (not the generation's own attention).
  - The decoder returns, for the config's alignment_heads (layer, head) only, the cross-attention
    *scores before softmax* (WhisperDecoder::return_normalized_attention() is false; the scores
    carry the 1/sqrt(d) query scale), heads concatenated in config order.
  - Columns are cut to the first num_frames / 2 (integer division) encoder rows, then softmax
    over those columns only (re-normalised over the valid audio, not over all 1500 rows).
  - Normalisation: per head and per column, standardise over the token axis (LayerNorm on axis -2,
    epsilon 0, no gain/bias: (x - mean) / std over all T + 3 query rows SOT, NOTS, text, EOT).
  - Median filter of width 7 along the time axis, reflect padding (numpy 'reflect', edge not
    repeated), per head; then the mean over the alignment heads.
  - Rows kept: from index len(sot_sequence) (= 1, the NOTIMESTAMPS query) for T + 1 rows: the
    queries that predict text token 0 .. T-1 and the one that predicts EOT (the EOT input row is
    dropped).
  - DTW on the negated matrix (cost = -value), moves (i-1,j-1) / (i-1,j) / (i,j-1) with strict
    '<' tie-breaks (diagonal, then vertical, else horizontal); backtrace with trace[0,:] = 2 and
    trace[:,0] = 1, emitting (i-1, j-1) pairs from (T+1, frames) back to (0, 0).
  - faster-whisper: jumps = first element plus every change of the text index; jump_times =
    time_index[jumps] / 50 (tokens_per_second: 20 ms per encoder row); words from
    split_to_word_tokens(text + [EOT]) (English: split on spaces/punctuation); start = jump time
    at the word's first token, end = jump time at the next word's first token (EOT for the last);
    probability = mean of the token probabilities (softmax over ids < EOT). Then its heuristics:
    median word duration (capped at 0.7 s), words at sentence marks clipped to twice the median,
    merged punctuation, first/last word adjusted against the segment bounds, and
    round(window offset + t, 2).

Differences from prunescope's path worth knowing: faster-whisper pads the log-mel of a window
shorter than 30 s with zeros after normalisation (pad_or_trim), where Whisper's feature extractor
(transformers, prunescope) pads the audio with silence first, so the encoder input of the padded
frames differs; and with <|notimestamps|> CTranslate2 does not mask timestamp tokens (reference.py
does). Each 30 s window is given to transcribe() on its own (the samples of that window, as
prunescope encodes windows) and only its first segment is taken, because with word_timestamps
faster-whisper would otherwise seek back to the last word's end and decode the rest again.
The plain and padded results differ on jfk.wav (the plain one drops the comma after "for you",
word times move by up to 0.26 s) and on the 3 s second window of jfk_x3.wav ("ask"/"Ask").

Run by hand, never in CI (needs torch + transformers 5 + faster-whisper, e.g. .venv-bench of
scripts/bench-baseline.py), after `cargo build`:
    .venv-bench/bin/python scripts/make-word-fixtures.py
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
from tokenizers import Tokenizer
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

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
WORD_CLIPS = ["assets/jfk.wav", "tests/data/arctic_a0007.wav", "tests/data/jfk_x3.wav"]
MAP_CLIPS = ["assets/jfk.wav", "tests/data/arctic_a0007.wav"]
NEW_TOKENS = 12


def g7(x):
    return float(f"{x:.7g}")


def rows7(m):
    return [[g7(v) for v in row] for row in m.tolist()]


def load(rel):
    audio, sr = sf.read(os.path.join(ROOT, rel), dtype="float32")
    assert sr == 16000 and audio.ndim == 1, (rel, sr, audio.shape)
    return audio


def golden_run(clip, method, keep):
    for d in (GOLDEN, os.path.join(ROOT, "..", "shared", "golden")):
        p = os.path.join(d, clip + ".json")
        if os.path.exists(p):
            g = json.load(open(p))
            for r in g["runs"]:
                if r["method"] == method and r["keep"] == keep:
                    return g, r
    raise SystemExit(f"no golden {method} {keep} run for {clip}")


# --- 1. faster-whisper word timings -------------------------------------------------------------

SETTINGS = dict(
    language="en",
    task="transcribe",
    beam_size=1,
    best_of=1,
    patience=1,
    length_penalty=1,
    repetition_penalty=1,
    no_repeat_ngram_size=0,
    temperature=0.0,  # one temperature: no fallback
    compression_ratio_threshold=None,
    log_prob_threshold=None,
    no_speech_threshold=None,  # never skip a window as silence
    condition_on_previous_text=False,
    initial_prompt=None,
    prefix=None,
    hotwords=None,
    suppress_blank=True,  # = begin_suppress_tokens [220, EOT] at the first step
    suppress_tokens=[-1],  # = the config's suppress_ids (the same 90 ids as suppress_tokens)
    without_timestamps=True,  # prompt [SOT, NOTIMESTAMPS]
    max_new_tokens=MAX_TOKENS,
    word_timestamps=True,
    vad_filter=False,
    multilingual=False,
    hallucination_silence_threshold=None,
)


def transcribe_window(model, window, frames=None):
    """The window's first segment (None when it has no text); `frames` overrides the num_frames
    given to the alignment (for the silence-padded variant)."""
    if frames is not None:
        orig = type(model).add_word_timestamps

        def patched(segments, tokenizer, encoder_output, _num_frames, *a, **k):
            return orig(model, segments, tokenizer, encoder_output, frames, *a, **k)

        model.add_word_timestamps = patched
    try:
        gen, _info = model.transcribe(window, **SETTINGS)
        seg = next(gen, None)
        gen.close()  # never let it seek back to the last word and decode again
    finally:
        model.__dict__.pop("add_word_timestamps", None)
    return seg


def words(ct2_dir):
    import faster_whisper
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir, device="cpu", compute_type="float32", cpu_threads=2)
    out = {"_meta": {
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": __import__("ctranslate2").__version__,
        "model": "prunescope fetch whisper-tiny.en (CTranslate2), device cpu, compute_type float32",
        "settings": SETTINGS,
        "windows": "each 30 s window's samples transcribed on their own, first segment only; "
                   "times offset by the window start",
        "padded": "per clip, the same with each window's samples padded with silence to 30 s "
                  "(the encoder input of transformers / prunescope) and the alignment still cut "
                  "to the window's content frames",
    }}
    for rel in WORD_CLIPS:
        audio = load(rel)
        entry = {}
        for variant in ("plain", "padded"):
            segs, ws = [], []
            for w0 in range(0, len(audio), WIN):
                window = audio[w0 : w0 + WIN]
                offset = w0 / 16000
                frames = model.feature_extractor(window).shape[-1] - 1
                if variant == "plain":
                    print(f"{rel} @{offset:.0f}s: num_frames {frames} -> {frames // 2} aligned columns")
                    seg = transcribe_window(model, window)
                else:
                    padded = np.concatenate([window, np.zeros(WIN - len(window), np.float32)])
                    seg = transcribe_window(model, padded, frames)
                if seg is None:
                    continue
                segs.append({"start": seg.start + offset, "end": seg.end + offset,
                             "text": seg.text, "tokens": list(seg.tokens)})
                for w in seg.words:
                    ws.append({"word": w.word, "start": w.start + offset, "end": w.end + offset,
                               "probability": w.probability})
            text = " ".join(s["text"].strip() for s in segs if s["text"].strip())
            res = {"text": text, "segments": segs, "words": ws}
            if variant == "plain":
                entry = res
            else:
                entry["padded"] = res
            print(rel, variant, repr(text))
            for w in ws:
                print(f"  {w['start']:6.2f} {w['end']:6.2f} {w['word']!r}")
        out[os.path.basename(rel)] = entry
    with open(os.path.join(GOLDEN, "words.json"), "w") as fh:
        json.dump(out, fh, indent=1)


# --- 2. Whisper cross-attention maps (transformers) ---------------------------------------------

def whisper_decode(model, cfg, enc, heads):
    """reference.py's greedy decode, keeping each step's cross-attention of the last query."""
    suppress = torch.tensor(cfg["suppress_tokens"])
    suppress_begin = torch.tensor(cfg["begin_suppress_tokens"])
    ids, past, feed = [], None, [SOT, NOTS]
    align_rows, all_rows, ended = [], [], False
    for step in range(MAX_TOKENS):
        out = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([feed]),
                    past_key_values=past, use_cache=True, output_attentions=True)
        past, logits = out.past_key_values, out.logits[0, -1].clone()
        cross = [a[0, :, -1, :].double() for a in out.cross_attentions]  # per layer (H, M)
        align_rows.append(torch.stack([cross[l][h] for l, h in heads]).mean(0))
        all_rows.append(torch.cat(cross).mean(0))
        logits[suppress] = -float("inf")
        logits[NOTS + 1 :] = -float("inf")
        if step == 0:
            logits[suppress_begin] = -float("inf")
        nxt = int(logits.argmax())
        if nxt == EOT:
            ended = True
            break
        ids.append(nxt)
        feed = [nxt]
    return ids, torch.stack(align_rows), torch.stack(all_rows), ended


def token_attention(ct2_dir):
    heads = [tuple(p) for p in json.load(open(os.path.join(ct2_dir, "config.json")))["alignment_heads"]]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf")
        subprocess.run([BINARY, "convert", ct2_dir, hf], check=True)
        cfg = json.load(open(os.path.join(hf, "config.json")))
        model = WhisperForConditionalGeneration.from_pretrained(
            hf, attn_implementation="eager", dtype=torch.float32).eval()
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        fe = WhisperFeatureExtractor(feature_size=cfg["num_mel_bins"], sampling_rate=16000)
        for rel in MAP_CLIPS:
            audio = load(rel)
            assert len(audio) <= WIN
            clip = os.path.splitext(os.path.basename(rel))[0]
            feats = fe(audio, sampling_rate=16000, return_tensors="pt").input_features
            h = model.model.encoder(feats).last_hidden_state  # (1, 1500, d)
            n = min(1500, math.ceil(math.ceil(len(audio) / 160) / 2))
            g, _ = golden_run(clip, "vanilla", 1.0)
            assert g["n"] == n, (g["n"], n)
            runs = []
            for method, keep in (("vanilla", 1.0), ("segmentwise", 0.25)):
                _, gr = golden_run(clip, method, keep)
                if method == "vanilla":
                    kept, memory, cols = None, h, n
                else:
                    kept = gr["kept"]
                    tail = list(range(n, min(1500, n + TAIL)))
                    memory, cols = h[:, kept + tail], len(kept)
                ids, amap, _, ended = whisper_decode(model, cfg, memory, heads)
                text = tok.decode(ids, skip_special_tokens=True).strip()
                same = text == gr["text"]
                print(f"{clip} {method} {keep}: {len(ids)} ids, ended {ended}, rows {amap.shape[0]}, "
                      f"cols {cols}, text matches golden: {same}")
                if not same:
                    print("  ours:  ", repr(text), "\n  golden:", repr(gr["text"]))
                assert amap.shape[0] == len(ids) + (1 if ended else 0)
                runs.append({
                    "method": method, "keep": keep, "segments": gr.get("segments"), "kept": kept,
                    "ids": ids, "ended": ended, "text": text, "rows": int(amap.shape[0]),
                    "cols": cols, "map": rows7(amap[:, :cols]),
                })
            out[os.path.basename(rel)] = {"alignment_heads": [list(p) for p in heads], "n": n,
                                          "runs": runs}
    path = os.path.join(GOLDEN, "token_attention.json")
    with open(path, "w") as fh:
        json.dump(out, fh)
    return path


# --- 3. toy ALM language-model attention to the audio placeholders ------------------------------

def alm(name, golden, cls):
    d = os.path.join(ALM, name)
    g = json.load(open(os.path.join(ALM, golden)))
    model = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    lm, head = model.model.language_model, model.lm_head
    audio_id = json.load(open(os.path.join(d, "config.json"))).get(
        "audio_token_index", None) or model.config.audio_token_id
    eos = json.load(open(os.path.join(d, "generation_config.json")))["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    runs = []
    for r in g["runs"]:
        input_ids = r["input_ids"]
        e = torch.tensor(r["embeds"], dtype=torch.float32).view(len(input_ids), -1)
        audio_pos = [i for i, t in enumerate(input_ids) if t == audio_id]
        assert len(audio_pos) == len(r["kept"]), (len(audio_pos), len(r["kept"]))
        ids, rows, ended = [], [], False
        for step in range(NEW_TOKENS):
            o = lm(inputs_embeds=e[None], output_attentions=True)
            logits = head(o.last_hidden_state[0, -1])
            if step == 0:
                err = float((logits - torch.tensor(r["last_logits"])).abs().max())
                assert err < 1e-5, f"{name} {r['method']}: logits differ from golden by {err}"
            att = torch.stack([a[0, :, -1, :] for a in o.attentions]).double()  # (L, H, S)
            rows.append(att[:, :, audio_pos].mean((0, 1)))
            nxt = int(torch.argmax(logits))
            if nxt in eos:
                ended = True
                break
            ids.append(nxt)
            e = torch.cat([e, lm.embed_tokens(torch.tensor([nxt]))], 0)
        gen = r["generated"]
        assert ids == gen[: len(ids)], (ids, gen)
        assert (ended and gen[len(ids)] in eos) or (not ended and len(ids) == len(gen)), (ids, gen)
        m = torch.stack(rows)
        assert m.shape[0] == len(ids) + (1 if ended else 0)
        print(f"{name} {r['method']} {r['keep']}: {len(ids)} ids, ended {ended}, "
              f"rows {m.shape[0]}, cols {len(audio_pos)}")
        runs.append({"method": r["method"], "keep": r["keep"], "segments": r["segments"],
                     "ids": ids, "ended": ended, "audio_positions": len(audio_pos),
                     "rows": int(m.shape[0]), "cols": len(audio_pos), "map": rows7(m)})
    return {"golden": golden, "runs": runs}


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"build the binary first: cargo build ({BINARY} is missing)")
    ct2_dir = subprocess.run([BINARY, "fetch", "whisper-tiny.en"], check=True,
                             capture_output=True, text=True).stdout.strip()
    words(ct2_dir)
    token_attention(ct2_dir)
    out = {
        "qwen2-audio-tiny": alm("qwen2-audio-tiny", "qwen2_audio_padded.json",
                                Qwen2AudioForConditionalGeneration),
        "af3-tiny": alm("af3-tiny", "af3_two_windows.json", AudioFlamingo3ForConditionalGeneration),
    }
    with open(os.path.join(ALM, "token_attention.json"), "w") as fh:
        json.dump(out, fh)
    for p in ("golden/words.json", "golden/token_attention.json", "alm/token_attention.json"):
        print(p, os.path.getsize(os.path.join(ROOT, "tests", "data", p)), "bytes")


if __name__ == "__main__":
    main()
