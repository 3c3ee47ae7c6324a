"""Decontamination on real data: recall of planted eval items, removals of clean Wikipedia, speed.

For each index setting (n for English, n for Chinese, the shortest item indexed):
  * verbatim: every shipped eval item (evals.decontam.item_text) pasted into a clean document of its language;
    found = the document's overlaps name the item's set (an item too short to index counts as missed);
  * perturbed: the same with whitespace (spaces to runs of spaces/newlines/tabs, spaces between Chinese
    characters), punctuation (dropped, swapped half/full width, commas added) and case (per word) changed;
  * clean: Wikipedia of ../shared (en: LLaMA-Factory's wiki_demo articles and WikiText-2 valid articles and
    their paragraphs; zh: CMRC 2018's Wikipedia paragraphs) and the share with any overlap (removed); C4 web
    documents beside them (not guaranteed clean: quiz pages copy benchmark questions).
Then the speed of `DecontamIndex.overlaps` against a peer measured in the same run: the plain exact lookup
(every n-gram of the document for every indexed length, looked up in one set).

Run: .venv/bin/python bench/decontam.py [--quick]   (needs ../shared/data/text; ~1-3 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.decontam import DecontamIndex, item_text, tokens  # noqa: E402
from evals.tasks import SHIPPED, load_suite, reference_texts  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
SETTINGS = [  # (n_en, n_zh, min_tokens); the default (evals.decontam) is (13, 13, 4)
    (13, 8, 4), (13, 10, 4), (13, 13, 4), (13, 20, 4), (10, 13, 4), (13, 13, 6), (13, 13, 8),
]
DEFAULT = (13, 13, 4)


def clean_docs() -> dict[str, list[str]]:
    en_wiki = (SHARED / "en" / "llamafactory_wiki_demo.txt").read_text()
    en_articles = [line for line in en_wiki.splitlines() if line.strip()]
    wikitext, current = [], []
    for line in (SHARED / "en" / "wikitext-2-valid.txt").read_text().splitlines():
        if re.match(r"^ = [^=].* = $", line) and current:
            wikitext.append("\n".join(current))
            current = []
        current.append(line)
    wikitext.append("\n".join(current))
    en_paras = [p for d in en_articles + wikitext for p in re.split(r"\n+|(?<=\.) (?=[A-Z][a-z]+ [a-z]+ )", d)
                if len(p) > 200]
    def jsonl(path: Path) -> list[str]:
        return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]

    zh = jsonl(SHARED / "zh" / "cmrc2018_wikipedia_contexts.jsonl")
    c4 = jsonl(SHARED / "en" / "llamafactory_c4_demo.jsonl")
    return {"en documents": en_articles + wikitext, "en paragraphs": en_paras, "zh paragraphs": zh, "en C4 web": c4}


def perturb(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        if ch == " ":
            out.append(rng.choice(["  ", "\n", "\t", " \n ", " "]))
        elif ch in ",.;:!?，。；：！？、“”\"'()（）":
            r = rng.random()
            if r < 0.5:
                continue  # dropped
            swap = {",": "，", ".": "。", "，": ",", "。": ".", "?": "？", "？": "?", ":": "：", "：": ":"}
            out.append(swap.get(ch, ch) if r < 0.8 else ch)
        elif "\u4e00" <= ch <= "\u9fff":
            out.append(ch + (" " if rng.random() < 0.2 else ""))
        else:
            out.append(ch)
    words = "".join(out).split(" ")
    cased = [w.upper() if rng.random() < 0.2 else w.title() if rng.random() < 0.2 else w.lower() for w in words]
    return " ".join(w + ("," if rng.random() < 0.05 else "") for w in cased)


def plant(item: str, host: str, rng: random.Random) -> str:
    cut = rng.randrange(len(host) + 1)
    while cut < len(host) and not host[cut].isspace():  # at a whitespace, as pasted text would be
        cut += 1
    return host[:cut] + "\n" + item + "\n" + host[cut:]


def recall(index: DecontamIndex, cases: list[tuple[str, str, str]], hosts: dict[str, list[str]],
           rng: random.Random, change: bool) -> tuple[float, dict[str, float]]:
    per: dict[str, list[int]] = {}
    for name, lang, text in cases:
        host = rng.choice(hosts[lang])
        doc = plant(perturb(text, rng) if change else text, host, rng)
        per.setdefault(name, []).append(name in index.overlaps(doc))
    total = sum(sum(v) for v in per.values()) / sum(len(v) for v in per.values())
    return total, {k: sum(v) / len(v) for k, v in per.items()}


def naive_overlaps(grams: set[int], sizes: list[int], text: str) -> bool:
    toks = tokens(text)
    return any(hash("\x1f".join(toks[i:i + k])) in grams for k in sizes for i in range(len(toks) - k + 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the default setting")
    args = ap.parse_args()
    if not SHARED.exists():
        print(f"needs {SHARED}")
        return 1
    tasks = load_suite(list(SHIPPED))
    refs = reference_texts()
    cases = [(t.name, t.lang, item_text(i)) for t in tasks for i in t.items]
    docs = clean_docs()
    hosts = {"en": docs["en documents"], "zh": docs["zh paragraphs"]}
    print(f"# bench/decontam.py, {date.today()}, {platform.machine()} {platform.processor() or ''}, "
          f"{len(cases)} items in {len(tasks)} sets + {sum(map(len, refs.values()))} reference texts; clean: "
          + ", ".join(f"{k} {len(v)}" for k, v in docs.items()))
    print("\n| n en | n zh | min tokens | unindexed items | verbatim found | perturbed found | "
          + " | ".join(f"{k} removed" for k in docs) + " | build s |")
    print("|---|---|---|---|---|---|" + "---|" * len(docs) + "---|")
    flagged_default: dict[str, list[tuple[str, list[str]]]] = {}
    per_set_default: dict[str, float] = {}
    for n_en, n_zh, min_tok in ([DEFAULT] if args.quick else SETTINGS):
        t0 = time.time()
        index = DecontamIndex.build(tasks, refs, {"en": n_en, "zh": n_zh}, min_tok)
        build = time.time() - t0
        rv, _ = recall(index, cases, hosts, random.Random(0), False)
        rp, per_set = recall(index, cases, hosts, random.Random(1), True)
        removed = {}
        for kind, ds in docs.items():
            hits = [(d[:60].replace("\n", " "), index.overlaps(d)) for d in ds]
            hits = [h for h in hits if h[1]]
            removed[kind] = f"{len(hits)}/{len(ds)} ({len(hits) / len(ds):.2%})"
            if (n_en, n_zh, min_tok) == DEFAULT:
                flagged_default[kind] = hits
                per_set_default = per_set
        print(f"| {n_en} | {n_zh} | {min_tok} | {sum(index.unindexed.values())} | {rv:.2%} | {rp:.2%} | "
              + " | ".join(removed.values()) + f" | {build:.2f} |")
    print(f"\nPerturbed recall per set {DEFAULT}:", ", ".join(f"{k} {v:.1%}" for k, v in per_set_default.items()))
    for kind, hits in flagged_default.items():
        for head, sets in hits:
            print(f"  removed ({kind}): {sets} «{head}…»")

    # Speed: ours (anchor pass) vs the plain exact lookup, same index contents, same documents.
    index = DecontamIndex.build(tasks, refs)
    grams = {h for slot in index.anchors.values() for (_, h) in slot}
    sizes = sorted({k for slot in index.anchors.values() for (k, _) in slot})
    corpus = docs["en documents"] + docs["zh paragraphs"]
    nbytes = sum(len(d.encode()) for d in corpus)
    t0 = time.time()
    ours = [bool(index.overlaps(d)) for d in corpus]
    t_ours = time.time() - t0
    t0 = time.time()
    peer = [naive_overlaps(grams, sizes, d) for d in corpus]
    t_peer = time.time() - t0
    assert ours == peer, "the two lookups disagree"
    print(f"\n| lookup | docs | MB | seconds | MB/s | ratio |\n|---|---|---|---|---|---|\n"
          f"| plain exact lookup ({len(sizes)} lengths) | {len(corpus)} | {nbytes / 1e6:.2f} | {t_peer:.2f} | "
          f"{nbytes / 1e6 / t_peer:.2f} | 1.00 |\n"
          f"| DecontamIndex (anchor pass) | {len(corpus)} | {nbytes / 1e6:.2f} | {t_ours:.2f} | "
          f"{nbytes / 1e6 / t_ours:.2f} | {t_peer / t_ours:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
