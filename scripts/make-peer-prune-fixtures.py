#!/usr/bin/env python3
"""Writes tests/data/prune/{ltbm,dart,samp}.json, the references of the `ltbm`, `dart` and
`samp` methods (src/prune/), written independently and naively from their sources
(docs/SPEC.md section 4):

- LTBM (arXiv 2605.25179; its text was not reachable, so from the description in issue 26):
  ToMe's bipartite soft matching restricted to a local window, round after round;
- DART (ZichenWen1/DART, `get_retained_image_token`): pivots by L1 key norm, each claims the
  tokens least similar to it;
- Samp (Tencent AngelSlim, `Samp/.../qwen2_audio_pruner.py`): greedy average-linkage merging of
  adjacent tokens, then fast greedy DPP MAP (Chen et al., 2018) over the groups;
- SpeechPrune's selection (arXiv 2412.12009; its text was not reachable, so from the issue's
  description): K shared over seconds by the mean prompt similarity, the best attention within
  (tests/data/prune/speechprune.json; the model's two scores are checked by
  scripts/make-peer-prune-golden.py).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy
    /tmp/v/bin/python scripts/make-peer-prune-fixtures.py

Never runs in CI: its output is committed. Clips: random keys, and keys made of runs (a few
directions repeated with noise, as frames of one phone are), with random scores; optionally a
real clip's keys and scores dumped by prunescope (`--real FILE`, see tests/data/prune/README).
"""
import argparse
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "prune"


def cosine(a, b):
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 and np.isfinite(den) else 0.0


def budget(keep, n):
    # round half away from zero, clamped to [1, n]
    return int(min(max(np.floor(keep * n + 0.5), 1), n))


# ---------------------------------------------------------------- LTBM
def ltbm(keys, k, window):
    keys = keys.astype(np.float64)
    groups = [[t] for t in range(len(keys))]
    k = min(max(k, 1), max(len(keys), 1))
    while len(groups) > k:
        m = len(groups)
        sums = [keys[g].sum(axis=0) for g in groups]
        edges = []
        for a in range(0, m, 2):
            best = None
            for b in range(max(0, a - (2 * window - 1)), min(m - 1, a + 2 * window - 1) + 1):
                if b % 2 == 1:
                    s = cosine(sums[a], sums[b])
                    if best is None or s > best[0]:
                        best = (s, b)
            if best is not None:
                edges.append((best[0], a, best[1]))
        if not edges:
            break
        r = min(m - k, len(edges))
        edges.sort(key=lambda e: (-e[0], e[1]))
        gone = set()
        for _, a, b in edges[:r]:
            groups[b] = groups[b] + groups[a]
            gone.add(a)
        groups = sorted((sorted(g) for i, g in enumerate(groups) if i not in gone), key=lambda g: g[0])
    return groups


# ---------------------------------------------------------------- DART
def dart(keys, k, pivots):
    keys = keys.astype(np.float64)
    n = len(keys)
    k = min(k, n)
    norms = [float(np.float32(np.abs(row).sum())) for row in keys]
    p = min(max(pivots, 1), k)
    order = sorted(range(n), key=lambda t: (-norms[t], t))
    piv = sorted(order[:p])
    taken = set(piv)
    kept = list(piv)
    rest = k - p
    for i, pv in enumerate(piv):
        quota = rest // p + (1 if i < rest % p else 0)
        cands = sorted((cosine(keys[pv], keys[t]), t) for t in range(n) if t not in taken)
        for _, t in cands[:quota]:
            taken.add(t)
            kept.append(t)
    return sorted(kept)


# ---------------------------------------------------------------- Samp
def greedy_dpp(features, relevance, budget):
    m = len(features)
    L = np.array([[relevance[i] * relevance[j] * cosine(features[i], features[j]) for j in range(m)] for i in range(m)])
    d2 = np.diag(L).copy()
    chosen = np.zeros(m, dtype=bool)
    C = []
    picked = []
    while len(picked) < min(budget, m):
        cand = [j for j in range(m) if not chosen[j]]
        j = max(cand, key=lambda x: (d2[x], -x))
        if not (np.isfinite(d2[j]) and d2[j] > 1e-12):
            break
        e = (L[j] - sum(c[j] * c for c in C)) / np.sqrt(d2[j]) if C else L[j] / np.sqrt(d2[j])
        d2 = d2 - e * e
        chosen[j] = True
        picked.append(j)
        C.append(e)
    if len(picked) < budget:
        rest = sorted((j for j in range(m) if not chosen[j]), key=lambda j: (-relevance[j], j))
        picked += rest[: budget - len(picked)]
    return picked


def samp_window(keys, w, begin, end, budget, threshold):
    if budget == 0:
        return []
    if budget >= end - begin:
        return [[t] for t in range(begin, end)]
    groups, joined = [], []
    for t in range(begin, end):
        if groups:
            g = groups[-1]
            sim = sum(cosine(keys[x], keys[t]) for x in g) / len(g)
            if sim >= threshold:
                g.append(t)
                joined.append((sim, t))
                continue
        groups.append([t])
    if len(groups) <= budget:
        released = {t for _, t in sorted(joined)[: budget - len(groups)]}
        out = []
        for g in groups:
            out.append([t for t in g if t not in released])
            out += [[t] for t in g if t in released]
        return sorted(out, key=lambda g: g[0])
    feats, rel = [], []
    for g in groups:
        ws = np.array([w[t] for t in g])
        ws = ws / ws.sum() if ws.sum() > 0 else np.full(len(g), 1.0 / len(g))
        feats.append(sum(wt * keys[t] for wt, t in zip(ws, g)))
        rel.append(float(np.mean([w[t] for t in g])))
    picked = sorted(greedy_dpp(feats, rel, budget))
    return [groups[i] for i in picked]


def samp(keys, scores, keep, threshold, window):
    keys = keys.astype(np.float64)
    n = len(keys)
    k = budget(keep, n)
    w = [float(s) if np.isfinite(s) and s > 0 else 0.0 for s in scores]
    cum = lambda t: int(np.floor(keep * t + 0.5))
    wins = []
    for b in range(0, n, window):
        e = min(b + window, n)
        wins.append([b, e, min(max(cum(e) - cum(b), 0), e - b)])
    short = k - sum(x[2] for x in wins)
    if short > 0 and wins:
        wins[0][2] = min(wins[0][2] + short, wins[0][1] - wins[0][0])
    groups = []
    for b, e, bud in wins:
        groups += samp_window(keys, w, b, e, bud, threshold)
    return groups


# ---------------------------------------------------------------- SpeechPrune
def speechprune(weights, scores, k, per):
    n = len(weights)
    k = min(k, n)
    groups = [(a, min(a + per, n)) for a in range(0, n, per)]
    w = [sum(max(float(x), 0.0) if np.isfinite(x) else 0.0 for x in weights[a:b]) / (b - a)
         for a, b in groups]
    if not any(x > 0 for x in w):
        w = [1.0] * len(groups)
    total = sum(w)
    quotas = [k * x / total for x in w]
    out = [int(np.floor(q)) for q in quotas]
    order = sorted(range(len(w)), key=lambda g: (-(quotas[g] - out[g]), g))
    while sum(out) > k:
        g = next(g for g in reversed(order) if out[g] > 0)
        out[g] -= 1
    missing = k - sum(out)
    for i in range(missing):
        out[order[i % len(order)]] += 1
    overflow = 0
    for g, (a, b) in enumerate(groups):
        overflow += max(out[g] - (b - a), 0)
        out[g] = min(out[g], b - a)
    for g in sorted(range(len(w)), key=lambda g: (-w[g], g)):
        add = min((groups[g][1] - groups[g][0]) - out[g], overflow)
        out[g] += add
        overflow -= add
    kept = []
    for (a, b), s in zip(groups, out):
        ranked = sorted(range(a, b), key=lambda t: (-scores[t], t))
        kept += ranked[:s]
    return sorted(kept)


# ---------------------------------------------------------------- clips
def clips(real):
    rng = np.random.default_rng(2026)
    out = []
    dim = 16
    random_keys = rng.standard_normal((96, dim)).astype(np.float32)
    directions = rng.standard_normal((6, dim))
    runs = []
    while len(runs) < 140:
        d = directions[rng.integers(0, 6)]
        for _ in range(int(rng.integers(2, 12))):
            runs.append(d + 0.25 * rng.standard_normal(dim))
    run_keys = np.array(runs[:140], dtype=np.float32)
    for name, keys in [("random", random_keys), ("runs", run_keys)]:
        scores = rng.random(len(keys)).astype(np.float32)
        out.append((name, keys, scores))
    for path in real or []:
        doc = json.loads(Path(path).read_text())
        keys = np.array(doc["keys"], dtype=np.float32).reshape(doc["n"], doc["dim"])
        out.append((doc["name"], keys, np.array(doc["scores"], dtype=np.float32)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", action="append", help="a clip's keys and scores (JSON)")
    args = ap.parse_args()
    docs = {"ltbm": [], "dart": [], "samp": [], "speechprune": []}
    rng = np.random.default_rng(412)
    for name, keys, scores in clips(args.real):
        n, dim = keys.shape
        base = {
            "name": name,
            "n": n,
            "dim": dim,
            # float(np.float32) is the exact value; Rust reads it back into the same f32.
            "keys": [float(x) for x in keys.flatten()],
            "scores": [float(x) for x in scores],
        }
        keeps = [0.5, 0.25, 0.1, 0.05]
        docs["ltbm"].append({**base, "cases": [
            {"keep": kp, "window": w, "groups": ltbm(keys, budget(kp, n), w)}
            for kp in keeps for w in [1, 2, 4]
        ]})
        docs["dart"].append({**base, "cases": [
            {"keep": kp, "pivots": p, "kept": dart(keys, budget(kp, n), p)}
            for kp in keeps for p in [1, 4, 8]
        ]})
        # Windows of 50 tokens for the synthetic clips so that several windows share the budget.
        window = 50 if name in ("random", "runs") else 1500
        docs["samp"].append({**base, "window": window, "cases": [
            {"keep": kp, "threshold": t, "groups": samp(keys, scores, kp, t, window)}
            for kp in keeps for t in [0.85, 0.6, 0.3]
        ]})
        # SpeechPrune: similarities in [-1, 1] with some negatives, groups of 7 and 25 tokens.
        sim = np.clip(rng.standard_normal(n) * 0.3 + 0.2, -1, 1).astype(np.float32)
        docs["speechprune"].append({**base, "similarity": [float(x) for x in sim], "cases": [
            {"keep": kp, "per": per, "kept": speechprune(sim, scores, budget(kp, n), per)}
            for kp in keeps for per in [7, 25]
        ]})
    for method, clips_ in docs.items():
        path = OUT / f"{method}.json"
        path.write_text(json.dumps({"clips": clips_}) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
