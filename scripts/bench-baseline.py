#!/usr/bin/env python3
"""Hugging Face transformers baseline for `prunescope bench`.

Does the same work as `prunescope bench CLIP` (src/cli/bench.rs) on the first 30 s of CLIP:
  1. log-mel of the window (WhisperFeatureExtractor),
  2. encoder + received-attention scores (eager attention; last layer's attentions summed over
     the valid query rows, averaged over heads),
  3. ten greedy decodes with a KV cache: full, then topk / segmentwise (S=10, paper mode) /
     bottomk at keep 0.5, 0.25, 0.1, each on the kept encoder tokens plus a 50-token silence tail,
     one after the other (transformers has no batched decode of different encoder lengths),
  4. a plain transcription of the same 30 s with faster-whisper (CTranslate2, what a user who
     only wants the transcript would pick) on the same CTranslate2 weights, f32, greedy, without
     timestamps, one window decoded once,
and writes the JSON that `prunescope bench CLIP --baseline FILE` prints side by side:
  {"what", "mel_s", "encoder_s", "decode_s", "tokens", "peak_rss_mb", "texts",
   "plain_s", "plain_what", "plain_text"} (the last three when the model is a CTranslate2 one).

usage: python3 scripts/bench-baseline.py CLIP.wav [--model DIR] [--reps 5] [--decode-reps 3]
                                        [--threads 2] [--out target/bench-baseline/baseline.json]

Outside a virtual environment with torch + transformers it creates `.venv-bench` at the repo root,
installs torch transformers soundfile safetensors tokenizers numpy into it (once) and re-runs
itself there. A CTranslate2 model directory is converted once to Hugging Face format with
`target/release/prunescope convert` (build it first with `cargo build --release`).
"""
import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, ".venv-bench")
BINARY = os.path.join(REPO, "target", "release", "prunescope")
PACKAGES = ["torch", "transformers", "soundfile", "safetensors", "tokenizers", "numpy",
            "faster_whisper"]
# pip names of the modules above
PIP = {"faster_whisper": "faster-whisper"}
REEXEC_FLAG = "PRUNESCOPE_BENCH_BASELINE_REEXEC"

WINDOW = 30 * 16000  # samples of one Whisper window
TAIL = 50  # silence-tail tokens given to the decoder after the kept ones (SPEC.md section 5)
SEGMENTS = 10  # segmentwise S (paper mode), prunescope's default
MAX_TOKENS = 224


def die(msg):
    print(f"bench-baseline: error: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Environment: run inside a venv that has the packages, else .venv-bench (created on demand).

def have_packages():
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES)


def ensure_environment():
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    if in_venv and have_packages():
        return
    if os.environ.get(REEXEC_FLAG):
        missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
        die(f"{sys.executable} still lacks {', '.join(missing)} after set-up; "
            f"remove {VENV} and run again")
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"bench-baseline: creating {VENV}", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "venv", VENV])
        if r.returncode != 0 or not os.path.exists(py):
            die(f"`{sys.executable} -m venv {VENV}` failed (on Debian/Ubuntu: apt install python3-venv)")
    probe = "import importlib.util,sys; sys.exit(any(importlib.util.find_spec(p) is None for p in sys.argv[1:]))"
    if subprocess.run([py, "-c", probe, *PACKAGES]).returncode != 0:
        print(f"bench-baseline: installing {' '.join(PACKAGES)} into {VENV} (once)", file=sys.stderr)
        r = subprocess.run([py, "-m", "pip", "install", "--upgrade", "pip"], stdout=subprocess.DEVNULL)
        r = subprocess.run([py, "-m", "pip", "install", *[PIP.get(p, p) for p in PACKAGES]])
        if r.returncode != 0:
            die(f"pip install into {VENV} failed (see pip's output above)")
    os.environ[REEXEC_FLAG] = "1"
    sys.stderr.flush()
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


# ---------------------------------------------------------------------------------------------
# Arguments and inputs (checked before the heavy imports, so errors are quick).

def default_model():
    """The default model's folder, as the binary finds it (fetching it on first use)."""
    import subprocess
    out = subprocess.run(["cargo", "run", "--release", "--quiet", "--", "fetch"], cwd=REPO,
                         capture_output=True, text=True)
    if out.returncode != 0:
        die(f"cannot find the default model: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout.strip().splitlines()[-1]


def parse_args():
    p = argparse.ArgumentParser(
        description="transformers baseline of `prunescope bench` (same clip, same ten runs)")
    p.add_argument("clip", help="audio file, 16 kHz (its first 30 s are used)")
    p.add_argument("--model", default=None,
                   help="Whisper model: CTranslate2 (converted once) or Hugging Face directory "
                        "(default: the default model, from `prunescope fetch`)")
    p.add_argument("--hf-dir", default=None,
                   help="where the converted Hugging Face model goes "
                        "(default: target/bench-baseline/<model name>-hf)")
    p.add_argument("--language", default="en",
                   help="language token of multilingual models (default en, as prunescope)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--reps", type=int, default=5, help="repetitions of mel and encoder (median)")
    p.add_argument("--decode-reps", type=int, default=3,
                   help="repetitions of the ten decodes (median; each takes ~15 s on 2 cores)")
    p.add_argument("--out", default=None,
                   help="JSON for `prunescope bench --baseline` "
                        "(default: target/bench-baseline/baseline.json)")
    a = p.parse_args()
    if a.reps < 1 or a.decode_reps < 1 or a.threads < 1:
        die("--reps, --decode-reps and --threads must be at least 1")
    a.model = a.model or default_model()
    a.out = a.out or os.path.join(REPO, "target", "bench-baseline", "baseline.json")
    if not os.path.isfile(a.clip):
        die(f"clip not found: {a.clip}")
    if not os.path.isdir(a.model):
        die(f"model directory not found: {a.model}")
    return a


def is_hf_dir(d):
    return os.path.isfile(os.path.join(d, "config.json")) and (
        os.path.isfile(os.path.join(d, "model.safetensors"))
        or os.path.isfile(os.path.join(d, "model.safetensors.index.json")))


def hf_model_dir(a):
    """The model as a Hugging Face directory, converting a CTranslate2 one once."""
    if is_hf_dir(a.model):
        return a.model
    if not os.path.isfile(os.path.join(a.model, "model.bin")):
        die(f"{a.model} is neither a CTranslate2 (model.bin) nor a Hugging Face "
            f"(model.safetensors) Whisper directory")
    name = os.path.basename(os.path.normpath(a.model))
    out = a.hf_dir or os.path.join(REPO, "target", "bench-baseline", f"{name}-hf")
    if is_hf_dir(out) and os.path.isfile(os.path.join(out, "tokenizer.json")):
        return out
    if not os.access(BINARY, os.X_OK):
        die(f"{BINARY} is missing: run `cargo build --release` first (it converts the model)")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    print(f"bench-baseline: converting {a.model} -> {out}", file=sys.stderr)
    r = subprocess.run([BINARY, "convert", a.model, tmp], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not is_hf_dir(tmp):
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        shutil.rmtree(tmp, ignore_errors=True)
        die(f"`prunescope convert {a.model} {tmp}` failed: {last}")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out


def read_clip(path):
    import numpy as np
    import soundfile as sf
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile.LibsndfileError, RuntimeError, ...
        die(f"cannot read {path}: {str(e).strip().splitlines()[0] if str(e).strip() else e}")
    if sr != 16000:
        die(f"{path} is sampled at {sr} Hz; this baseline needs 16 kHz "
            f"(e.g. ffmpeg -i {path} -ar 16000 out.wav)")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if len(audio) == 0:
        die(f"{path} has no samples")
    return np.ascontiguousarray(audio[:WINDOW], dtype=np.float32), len(audio)


# ---------------------------------------------------------------------------------------------
# Selections (SPEC.md section 3; the same code as /work/shared/tools/reference.py).

def k_of(n, keep):
    return max(1, min(n, int(math.floor(keep * n + 0.5))))


def order(scores, idx):
    # score descending, lower index first on ties (NaN counts as -inf)
    return sorted(idx, key=lambda i: (-(scores[i] if scores[i] == scores[i] else -math.inf), i))


def topk(scores, k):
    return sorted(order(scores, range(len(scores)))[:k])


def bottomk(scores, k):
    key = lambda i: ((scores[i] if scores[i] == scores[i] else -math.inf), i)
    return sorted(sorted(range(len(scores)), key=key)[:k])


def segmentwise(scores, k, s):
    n = len(scores)
    s = min(s, k, n)
    per = k // s
    kept = []
    for j in range(s):
        lo, hi = (j * n) // s, ((j + 1) * n) // s
        kept += order(scores, range(lo, hi))[:per]
    return sorted(kept)


def ten_runs():
    """prunescope bench's grid, in its order: full, then per keep topk/segmentwise/bottomk."""
    runs = [("full", 1.0)]
    for keep in (0.5, 0.25, 0.1):
        for m in ("topk", "segmentwise", "bottomk"):
            runs.append((m, keep))
    return runs


def select(method, keep, scores):
    n = len(scores)
    if method == "full":
        return list(range(n))
    k = k_of(n, keep)
    if method == "topk":
        return topk(scores, k)
    if method == "segmentwise":
        return segmentwise(scores, k, SEGMENTS)
    return bottomk(scores, k)


# ---------------------------------------------------------------------------------------------

def main():
    ensure_environment()
    a = parse_args()
    model_dir = hf_model_dir(a)
    audio, total_samples = read_clip(a.clip)

    import resource
    import statistics
    import time
    import warnings

    import torch
    import transformers

    # transformers 5.x deprecates `past_key_values` in favour of `cache` (a FutureWarning plus a
    # log line); the argument still works, so keep the output quiet. Also no loading progress bar.
    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)

    try:
        model = WhisperForConditionalGeneration.from_pretrained(
            model_dir, attn_implementation="eager", dtype=torch.float32)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = WhisperForConditionalGeneration.from_pretrained(
            model_dir, attn_implementation="eager", torch_dtype=torch.float32)
    model.eval()
    cfg = model.config
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))

    def token_id(t):
        i = tok.token_to_id(t)
        if i is None:
            die(f"{model_dir}/tokenizer.json has no `{t}` token: not a Whisper tokenizer")
        return i

    sot, eot, nots = token_id("<|startoftranscript|>"), token_id("<|endoftext|>"), token_id("<|notimestamps|>")
    if cfg.vocab_size >= 51865:  # multilingual, as prunescope: SOT, language, transcribe, no timestamps
        prompt = [sot, token_id(f"<|{a.language}|>"), token_id("<|transcribe|>"), nots]
    else:
        prompt = [sot, nots]
    suppress = torch.tensor(list(cfg.suppress_tokens or []), dtype=torch.long)
    suppress_begin = torch.tensor(list(cfg.begin_suppress_tokens or []), dtype=torch.long)
    fe = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins, sampling_rate=16000)
    encoder = model.model.encoder
    n = min(cfg.max_source_positions, math.ceil(math.ceil(len(audio) / 160) / 2))

    def timed(reps, f):
        times, value = [], None
        for _ in range(reps):
            t = time.perf_counter()
            value = f()
            times.append(time.perf_counter() - t)
        return statistics.median(times), value

    # 1. mel
    mel_s, features = timed(a.reps, lambda: fe(audio, sampling_rate=16000, return_tensors="pt").input_features)

    # 2. encoder + received-attention scores
    def encode():
        enc = encoder(features, output_attentions=True)
        attn = enc.attentions[-1][0]  # [H, 1500, 1500]
        scores = attn[:, :n, :n].sum(dim=1).mean(dim=0)  # received attention, f32
        return enc.last_hidden_state, scores

    encoder_s, (hidden, scores_t) = timed(a.reps, encode)
    scores = [float(x) for x in scores_t.double()]

    # 3. the ten decodes, one after the other, greedy with a KV cache
    def decode(memory):
        ids = list(prompt)
        past, feed = None, prompt
        for step in range(MAX_TOKENS):
            out = model(encoder_outputs=(memory,), decoder_input_ids=torch.tensor([feed]),
                        past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
            logits[suppress] = -math.inf
            logits[nots + 1:] = -math.inf
            if step == 0:
                logits[suppress_begin] = -math.inf
            nxt = int(logits.argmax())
            if nxt == eot:
                break
            ids.append(nxt)
            feed = [nxt]
        gen = ids[len(prompt):]
        return tok.decode(gen, skip_special_tokens=True).strip(), len(gen)

    tail = list(range(n, min(cfg.max_source_positions, n + TAIL)))
    runs = ten_runs()

    def decode_all():
        results = []
        for method, keep in runs:
            kept = select(method, keep, scores)
            results.append(decode(hidden[:, kept + tail]))
        return results

    decode_s, results = timed(a.decode_reps, decode_all)
    texts = [t for t, _ in results]

    # 4. a plain transcription with faster-whisper on the CTranslate2 weights
    plain = {}
    if os.path.isfile(os.path.join(a.model, "model.bin")):
        import faster_whisper
        fw = faster_whisper.WhisperModel(a.model, device="cpu", compute_type="float32",
                                         cpu_threads=a.threads)

        def transcribe():
            segments, _ = fw.transcribe(
                audio, beam_size=1, best_of=1, temperature=0.0, without_timestamps=True,
                condition_on_previous_text=False, vad_filter=False, language=a.language,
                word_timestamps=False)
            return " ".join(s.text.strip() for s in segments)

        transcribe()  # warm-up
        plain_s, plain_text = timed(a.reps, transcribe)
        plain = {"plain_s": plain_s, "plain_text": plain_text,
                 "plain_what": f"faster-whisper {faster_whisper.__version__} f32, "
                               f"{a.threads} threads"}
    tokens = sum(c for _, c in results)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    what = f"transformers {transformers.__version__} eager, torch {torch.__version__}, {a.threads} threads"
    doc = {"what": what, "mel_s": mel_s, "encoder_s": encoder_s, "decode_s": decode_s,
           "tokens": tokens, "peak_rss_mb": peak_rss_mb, "texts": texts, **plain}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    err = sys.stderr
    print(f"bench-baseline: {a.clip} (first {len(audio) / 16000:.1f} s of {total_samples / 16000:.1f} s), "
          f"{model_dir}, {n} tokens, {what}", file=err)
    print(f"| {'stage':<36} | {'seconds':>10} |", file=err)
    print(f"|{'':-<38}|{'':->12}|", file=err)
    rows = [(f"mel (one 30 s window), median of {a.reps}", mel_s),
            (f"encoder + scores, median of {a.reps}", encoder_s),
            (f"10 decodes, median of {a.decode_reps}", decode_s),
            ("end to end (mel + encoder + decodes)", mel_s + encoder_s + decode_s)]
    if plain:
        rows.append((f"plain transcription, faster-whisper", plain["plain_s"]))
    for what_, s in rows:
        print(f"| {what_:<36} | {s:>10.3f} |", file=err)
    print(f"tokens generated: {tokens}; {decode_s * 1e3 / max(tokens, 1):.2f} ms per token; "
          f"peak RSS {peak_rss_mb:.0f} MB", file=err)
    for (method, keep), (text, count) in zip(runs, results):
        print(f"  {method:<12} {keep:4.2f} {count:>4} tok  {text}", file=err)
    print(f"wrote {a.out}", file=err)


if __name__ == "__main__":
    main()
