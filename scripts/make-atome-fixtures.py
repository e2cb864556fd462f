#!/usr/bin/env python3
"""Writes tests/data/prune/atome.json, the reference of the `atome` method (src/prune/atome.rs),
from the description of A-ToMe (Li et al., Interspeech 2023, adjacent token merging), written
independently and naively: at every step, every adjacent pair of groups is scored by the cosine
of the groups' mean keys, the best pair merges (the leftmost on a tie), until K groups remain.

    .venv-bench/bin/python scripts/make-atome-fixtures.py     # any Python 3 with numpy

Never runs in CI: its output is committed. Clips: random keys, and keys made of runs (a few
directions, each repeated with noise, as speech frames of one phone are), at several K and, in
the threshold mode, at several thresholds.
"""
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "prune" / "atome.json"


def cosine(a, b):
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 and np.isfinite(den) else 0.0


def reference(keys, k, threshold=None):
    """Groups (first, last) after merging down to k groups, or while the most similar adjacent
    pair is more similar than `threshold`."""
    keys = keys.astype(np.float64)
    groups = [[t, t] for t in range(len(keys))]
    while len(groups) > (1 if threshold is not None else k):
        sums = [keys[a:b + 1].sum(axis=0) for a, b in groups]
        sims = [cosine(sums[i], sums[i + 1]) for i in range(len(groups) - 1)]
        best = int(np.argmax(sims))  # the first maximum: the leftmost pair
        if threshold is not None and sims[best] <= threshold:
            break
        groups[best][1] = groups[best + 1][1]
        del groups[best + 1]
    return [tuple(g) for g in groups]


def main():
    rng = np.random.default_rng(2023)
    clips = []
    random_keys = rng.standard_normal((64, 16)).astype(np.float32)
    directions = rng.standard_normal((6, 16))
    runs = []
    for i in range(12):
        d = directions[rng.integers(0, 6)]
        for _ in range(int(rng.integers(2, 9))):
            runs.append(d + 0.3 * rng.standard_normal(16))
    run_keys = np.array(runs, dtype=np.float32)
    for name, keys in [("random", random_keys), ("runs", run_keys)]:
        n = len(keys)
        ks = sorted({n, n - 1, n // 2, n // 4, n // 10, 2, 1})
        clips.append({
            "name": name,
            "n": n,
            "dim": int(keys.shape[1]),
            # float(np.float32) is the exact value; Rust reads it back into the same f32.
            "keys": [float(x) for x in keys.flatten()],
            "groups": {str(k): reference(keys, k) for k in ks},
            "thresholds": {str(t): reference(keys, n, t) for t in [0.95, 0.8, 0.5, 0.2, 0.0]},
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"clips": clips}, indent=None) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
