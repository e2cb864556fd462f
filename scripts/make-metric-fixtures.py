#!/usr/bin/env python3
"""Writes the metric fixtures of tests/eval_metrics.rs from the reference implementations.

    python3 -m venv .venv-eval && .venv-eval/bin/pip install pycocoevalcap==1.2 jiwer==4.0.0
    .venv-eval/bin/python scripts/make-metric-fixtures.py      # needs `java` (PTBTokenizer)

Never runs in CI: its outputs are committed under tests/data/eval/ (small JSON files).
  ptb.json    raw captions -> pycocoevalcap PTBTokenizer output (punctuation removed)
  ptb_fuzz.json  400 lines of adversarial token soup, same reference
  cider.json  raw captions (gts 5 refs per item, one prediction) -> CIDEr-D corpus score and
              per-item scores, both from raw text (PTB tokenised) and from pre-tokenised text
  wer.json    reference/hypothesis pairs -> jiwer.wer per pair and over the corpus, with
              jiwer's default transform and with lower-case + RemovePunctuation added
"""
import json
import random
import sys
from pathlib import Path

import jiwer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "eval"

TRICKY = [
    "A dog barks, while birds chirp in the background.",
    "Someone's footsteps on a wooden floor; then a door creaks.",
    'A man says "hello" and a woman laughs!',
    "Rain falls on a tin roof -- heavy at first, then light...",
    "A car's engine idles (and revs) before driving away?",
    "Water trickles from a faucet: drip, drip, drip.",
    "Two people talk in a well-known cafe near the sea-side.",
    "A 12-year-old boy plays a 3.5 minute song at 100% volume.",
    "The crowd cheers as the team scores 2-1; fans shout 'goal'.",
    "Birds don't stop chirping; they can't.",
    "The DOG Barks LOUDLY at 5 p.m. on Main St.",
    "A bell rings... and rings... and RINGS",
    "Wind blows/howls through the trees & leaves rustle.",
    "Cars pass by on a wet road [loud] {quiet} <noise>",
    "A person whistles a tune, then says: 'I'm done.'",
    "Dogs' paws tap on the tiles; the dogs' owner calls them.",
    "Gonna rain, wanna leave? Cannot stay.",
    "An ice-cream truck plays its jingle -- kids yell!!!",
    "Machinery hums at 1,000 rpm; a worker's radio plays #1 hits.",
    "Ocean waves crash... seagulls caw... a child laughs.",
    "Electric guitar: E minor 9 chord, strummed once.",
    "Someone types on a keyboard - click clack - and sighs.",
    "It is 3:45 and the clock's ticking loudly.",
    "A train's horn blows; passengers' voices murmur.",
    "Mr. Smith's dog barks at Dr. Jones.",
    "Applause; then silence. Then applause again!",
    "   leading and trailing spaces   ",
    "Tabs\tinside\tthe caption",
    "A *loud* bang, then $5 coins drop",
    "Birds chirp \u2014 a jet flies over \u2013 distant thunder\u2026",
    "\u201cQuoted\u201d text with \u2018curly\u2019 quotes",
    "e-mail, u.s.a., U.S. Army, e.g. rain, i.e. wind",
    "A baby cries, a mother hums: shh, shh.",
    "Metal clanks against metal; a hammer's strike echoes.",
    "Cats' meows and a dog's growl. 'Tis the season.",
    "Number 42 and 3.14 and -5 and +7 and 10/20",
    "Don't, won't, shouldn't've, y'all, o'clock",
    "A motor vroooms!?",
    "a woman's voice,a man's voice.and a child's voice",
    "People talk loudly.Then a car passes by",
    "A clock tick-tocks 'til noon; rock 'n' roll plays.",
    "The rain is falling down hard , and thunder is heard .",
    "A door slams shut ; someone walks away",
    "A caf\u00e9 with na\u00efve music and an \u00c9tude",
    "Gunshots: bang! bang! BANG!",
    "a large crowd of people are talking and laughing",
    "heavy rain falling onto a hard surface with thunder in the distance",
    "A horse's hooves clip-clop on cobblestones.",
    "Someone is hammering (loudly) -- it's annoying.",
    "100 birds, 2 dogs and 1 cat @ the farm",
    "She said: \"don't go!\" -- he went anyway.",
    "An alarm beeps... beep-beep-beep... then stops",
    "The wind's howling isn't stopping; we'd better go.",
    "water flows;birds chirp,insects buzz",
    "A man clears his throat, coughs and then speaks:",
    "A car drives by at 60 mph -- quickly!",
]

SUBJECTS = ["a dog", "birds", "a man", "a woman", "children", "the wind", "rain", "a car",
            "a crowd", "an engine", "waves", "a bell", "footsteps", "a door", "thunder"]
VERBS = ["barks", "chirp", "speaks", "laughs", "play", "blows", "falls", "drives by", "cheers",
         "idles", "crash", "rings", "echo", "creaks", "rumbles"]
TAILS = ["in the background", "loudly", "softly", "nearby", "in the distance", "outside",
         "on a wooden floor", "while people talk", "and then stops", "repeatedly", "",
         "as cars pass by", "near the sea", "in a large room", "over and over"]
PUNCT = [".", "", "!", " .", ",", "..."]


def sentence(rng):
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(TAILS)]
    if rng.random() < 0.4:
        parts += ["and", rng.choice(SUBJECTS), rng.choice(VERBS)]
    s = " ".join(p for p in parts if p)
    if rng.random() < 0.5:
        s = s[0].upper() + s[1:]
    return s + rng.choice(PUNCT)


def ptb(captions):
    tok = PTBTokenizer()
    data = {str(i): [{"caption": c}] for i, c in enumerate(captions)}
    out = tok.tokenize(data)
    return [out[str(i)][0] for i in range(len(captions))]


def make_ptb():
    rows = [{"in": c, "out": o} for c, o in zip(TRICKY, ptb(TRICKY))]
    (OUT / "ptb.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


# Adversarial token soup: every hard case of the PTB lexer at once, to measure how close the
# Rust tokeniser is beyond realistic captions (the test asks >= 99 % of lines identical).
FUZZ_WORDS = [
    "dog", "Dog's", "dogs'", "isn't", "can't", "won't", "I'm", "we'll", "they're", "you've",
    "it'd", "cannot", "gonna", "well-known", "e.g.", "U.S.", "Mr.", "St.", "a.m.", "3.5",
    "1,000", "12:30", "50%", "$20", "#3", "(loud)", "[noise]", '"quoted"', "'single'",
    "rock'n'roll", "o'clock", "'til", "--", "-", "...", "\u2026", "\u2014", "!", "?", "!!", "?!",
    ",", ";", ":", ".", "and/or", "AT&T", "na\u00efve", "Caf\u00e9", "x-ray", "2-1", "-5", "+3",
    "ok.", "etc.", "vs.", "No.", "Jr.", "U.K.", "cars.", "birds,", "it's", "'s", "'", "`", "``",
    "e-mail", "a", "the", "in", "background", "chirping", "A", "I", "B.", "plan", "&", "@", "*",
    "=", "+", "<b>", "http://x.com", "5'6\"", "80's", "'90s", "rock 'n' roll", "ma'am", "don't!",
    "isn't.", "dog.)", "(dog.)", "dogs'.", "Inc.", "p.m.", "Dr", "Mrs.", "fig.", "approx.",
    "sq.", "ft.", "Ave.", "birds.Then", "a,b", "hi!", "yes?", "wow!!", "O'Brien", "children's",
    "kids'", "ain't", "y'know", "'em", "doin'", "5-year-old", "1/2", "3rd", "20th-century",
]


def make_ptb_fuzz():
    rng = random.Random(1)
    lines = [" ".join(rng.choice(FUZZ_WORDS) for _ in range(rng.randint(3, 12)))
             for _ in range(400)]
    rows = [{"in": c, "out": o} for c, o in zip(lines, ptb(lines))]
    (OUT / "ptb_fuzz.json").write_text(json.dumps(rows, indent=0, ensure_ascii=False) + "\n")


def make_cider():
    rng = random.Random(5)
    gts, res = {}, {}
    pool = TRICKY[:]
    for i in range(40):
        refs = [sentence(rng) for _ in range(5)]
        if i % 4 == 0:
            refs[rng.randrange(5)] = rng.choice(pool)
        r = rng.random()
        if r < 0.3:
            pred = refs[0]
        elif r < 0.6:
            pred = sentence(rng)
        elif r < 0.7:
            pred = rng.choice(pool)
        elif r < 0.8:
            pred = ""
        else:
            w = refs[1].split()
            pred = " ".join(w[: max(1, len(w) // 2)] + ["and", "something", "else"])
        gts[f"clip{i:02d}.wav"] = refs
        res[f"clip{i:02d}.wav"] = [pred]
    tok = PTBTokenizer()
    gts_t = tok.tokenize({k: [{"caption": c} for c in v] for k, v in gts.items()})
    res_t = tok.tokenize({k: [{"caption": c} for c in v] for k, v in res.items()})
    score, scores = Cider().compute_score(gts_t, res_t)
    # The same metric on pre-tokenised text isolates the CIDEr-D arithmetic from tokenisation.
    score_tok, scores_tok = Cider().compute_score(gts_t, res_t)
    keys = sorted(gts)
    doc = {
        "items": [{"id": k, "refs": gts[k], "pred": res[k][0],
                   "refs_tok": gts_t[k], "pred_tok": res_t[k][0]} for k in keys],
        "corpus": float(score),
        # Cider iterates gts in key order; both dicts were built in sorted order.
        "per_item": [float(x) for x in scores],
        "corpus_tok": float(score_tok),
    }
    assert list(gts.keys()) == keys
    (OUT / "cider.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


WER_PAIRS = [
    ("and so my fellow americans ask not", "and so my fellow americans ask not"),
    ("And so, my fellow Americans, ask not.", "and so my fellow americans ask not"),
    ("the cat sat on the mat", "the cat sat mat"),
    ("the cat sat on the mat", "a cat sat on the the mat today"),
    ("front center", "Front center."),
    ("hello world", ""),
    ("  spaces   everywhere  here ", "spaces everywhere   here"),
    ("It's easy to tell the depth of a well.", "It's easy to tell the depth of a well."),
    ("It's easy to tell the depth of a well.", "Its easy to tell the depth of the well"),
    ("don't stop \u2014 believing\u2026", "Don't stop believing!"),
    ("one two three four five", "five four three two one"),
    ("a b c", "x y z w v"),
    ("\u201cQuoted\u201d caf\u00e9 na\u00efve", "quoted CAF\u00c9 naive"),
    ("twenty-one guns, 3.5 seconds", "twenty one guns 3.5 seconds"),
    ("Side left", "side, left"),
]


def make_wer():
    refs = [r for r, _ in WER_PAIRS]
    hyps = [h for _, h in WER_PAIRS]
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                          jiwer.ReduceToListOfListOfWords()])
    pairs = []
    for r, h in WER_PAIRS:
        o = jiwer.process_words(r, h)
        on = jiwer.process_words(r, h, reference_transform=norm, hypothesis_transform=norm)
        pairs.append({"ref": r, "hyp": h, "wer": o.wer, "sub": o.substitutions,
                      "del": o.deletions, "ins": o.insertions, "hits": o.hits,
                      "wer_norm": on.wer})
    doc = {
        "pairs": pairs,
        "corpus": jiwer.wer(refs, hyps),
        "corpus_norm": jiwer.wer(refs, hyps, reference_transform=norm, hypothesis_transform=norm),
        "jiwer": jiwer.__version__ if hasattr(jiwer, "__version__") else "4.0.0",
    }
    (OUT / "wer.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ptb":
        # Development aid: tokenise stdin lines with the reference tokenizer.
        lines = [l.rstrip("\n") for l in sys.stdin]
        for l in ptb(lines):
            print(l)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    make_ptb()
    make_ptb_fuzz()
    make_cider()
    make_wer()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
