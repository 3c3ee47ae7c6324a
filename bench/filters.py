"""Heuristic filters (`curation.filters`) on clean reference text, raw web text and DCLM human labels.

Prints markdown tables:

1. Share of clean reference documents kept, per corpus (Wikipedia and WikiText for English, CMRC2018
   Wikipedia paragraphs and the happy-llm textbook for Chinese); target >= 95% in both languages.
2. Share of raw web documents (Common Crawl / Dolma WARC samples, main text extracted) removed, per language
   and per reason.
3. DCLM human quality labels: share of low-quality documents removed against share of high-quality documents
   kept; the reference row is the Gopher quality rules alone (the rule set before the C4/FineWeb/zh rules).
   datatrove's own filters cannot serve as the peer here: their word splitter needs spaCy/NLTK, which the venv lacks.
4. PII replacements found in the raw web text.

    .venv/bin/python bench/filters.py            # ~30 s; data from ../shared/data
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation import filters, pii  # noqa: E402
from curation.config import FilterConfig  # noqa: E402
from curation.extract import extract  # noqa: E402
from curation.langid import identify  # noqa: E402
from curation.readers import read_records  # noqa: E402

DATA = REPO.parent / "shared" / "data"
WARCS = ["cc-main-2020-34-sample.warc.gz", "dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz",
         "whirlwind-cc-main-2024-22.warc.gz", "ukwa-IAH-urls-wget.warc.gz"]


def _detokenize(line: str) -> str:
    """Undo WikiText's tokenisation (' @-@ ', ' , ', "<unk>") so that the text reads as it did on Wikipedia."""
    line = re.sub(r" @(.)@ ", r"\1", line).replace("<unk>", "unknown")
    return re.sub(r" ([,.;:!?)'])", r"\1", line).replace("( ", "(")


def wikitext_articles(path: Path) -> list[str]:
    """WikiText-2: one document per article (a ' = Title = ' heading starts one), detokenised."""
    docs: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.fullmatch(r" = [^=].* = ", line):
            if current:
                docs.append("\n".join(current))
            current = [line.strip(" =")]
        elif line.strip() and not line.startswith(" = ="):
            current.append(_detokenize(line.strip()))
    if current:
        docs.append("\n".join(current))
    return docs


def clean_corpora() -> dict[str, tuple[str, list[str]]]:
    en, zh = DATA / "text" / "en", DATA / "text" / "zh"
    return {
        "Wikipedia (LLaMA-Factory wiki_demo)": ("en", [line for line in (en / "llamafactory_wiki_demo.txt")
                                                       .read_text(encoding="utf-8").splitlines() if line.strip()]),
        "WikiText-2 valid (articles)": ("en", wikitext_articles(en / "wikitext-2-valid.txt")),
        "CMRC2018 Wikipedia paragraphs": ("zh", [json.loads(line)["text"] for line
                                                 in (zh / "cmrc2018_wikipedia_contexts.jsonl")
                                                 .read_text(encoding="utf-8").splitlines()]),
        "happy-llm textbook (files)": ("zh", [p.read_text(encoding="utf-8")
                                              for p in sorted((zh / "happy-llm").glob("*.md"))]),
    }


def web_docs() -> list[str]:
    docs = []
    for name in WARCS:
        path = DATA / "warc" / name
        if not path.exists():
            continue
        for record in read_records(path):
            if record["kind"] == "html":
                text, _ = extract(record["content"], record["url"], record["charset"])
            else:
                text = record["content"].strip()
            if len(text) >= 50:
                docs.append(text)
    return docs


def gopher_only(text: str) -> str | None:
    """Only the Gopher quality rules (the English rule set before C4/FineWeb/repetition were added)."""
    words = text.split()
    if not words:
        return "word_count"
    cfg = FilterConfig().en.model_copy(update=dict(c4_lorem_ipsum=False, c4_curly_bracket=False,
                                                   min_line_punct_fraction=0.0, max_short_line_fraction=1.0,
                                                   max_newline_word_ratio=1e9, max_bullet_line_fraction=1.0))
    return filters._check_english(text, words, filters.lines_of(text), cfg)


def main() -> None:
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: this bench needs the shared data")
    cfg = FilterConfig()
    print(f"# bench/filters.py  {time.strftime('%Y-%m-%d')}  {platform.machine()} {os.cpu_count()} cores  "
          f"python {platform.python_version()}\n")

    print("## Clean reference text: share kept (target >= 0.95)\n")
    print("| corpus | lang | docs | kept | top drop reasons |")
    print("|---|---|---:|---:|---|")
    per_lang: dict[str, list[int]] = {}
    for name, (lang, docs) in clean_corpora().items():
        reasons = Counter(filters.check(d, lang, cfg) for d in docs)
        kept = reasons.pop(None, 0)
        per_lang.setdefault(lang, [0, 0])
        per_lang[lang][0] += kept
        per_lang[lang][1] += len(docs)
        top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(3)) or "-"
        print(f"| {name} | {lang} | {len(docs)} | {kept / len(docs):.3f} | {top} |")
    for lang, (kept, total) in per_lang.items():
        print(f"| **all {lang}** | {lang} | {total} | **{kept / total:.3f}** | |")

    print("\n## Raw web text (WARC samples, main text extracted): share removed\n")
    print("| lang (identify) | docs | removed | top drop reasons |")
    print("|---|---:|---:|---|")
    web = web_docs()
    by_lang: dict[str, list[str]] = {}
    for doc in web:
        by_lang.setdefault(identify(doc)[0] or "none", []).append(doc)
    for lang in sorted(by_lang, key=lambda k: -len(by_lang[k])):
        docs = by_lang[lang]
        if lang not in ("en", "zh"):
            continue
        reasons = Counter(filters.check(pii.scrub(d)[0], lang, cfg) for d in docs)
        kept = reasons.pop(None, 0)
        top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(4)) or "-"
        print(f"| {lang} | {len(docs)} | {1 - kept / len(docs):.3f} | {top} |")
    others = sum(len(v) for k, v in by_lang.items() if k not in ("en", "zh"))
    print(f"| other languages (dropped by langid) | {others} | - | - |")

    print("\n## DCLM human quality labels (218 docs): ours vs the Gopher quality rules alone\n")
    rows = [json.loads(line) for line in (DATA / "quality" / "dclm_human_quality" / "majority_minus_agreement.jsonl")
            .read_text(encoding="utf-8").splitlines()]
    print("| filters | low-quality removed | high-quality kept | margin (low removed - high removed) | docs/s |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for name, fn in [("lmpipe (curation.filters)", lambda t: filters.check(t, identify(t)[0], cfg)),
                     ("reference: Gopher quality rules alone", gopher_only)]:
        start = time.perf_counter()
        verdict = [fn(r["text"]) for r in rows]
        seconds = time.perf_counter() - start
        low = [v for v, r in zip(verdict, rows) if r["label"] == 0]
        high = [v for v, r in zip(verdict, rows) if r["label"] == 1]
        low_removed = sum(v is not None for v in low) / len(low)
        high_kept = sum(v is None for v in high) / len(high)
        results[name] = (low_removed, high_kept)
        print(f"| {name} | {low_removed:.3f} | {high_kept:.3f} | {low_removed - (1 - high_kept):+.3f} | "
              f"{len(rows) / seconds:.0f} |")

    print("\n## PII replaced in the raw web text\n")
    counts: Counter[str] = Counter()
    changed = 0
    for doc in web:
        _, found = pii.scrub(doc)
        changed += bool(found)
        counts.update(found)
    print("| docs | docs changed | " + " | ".join(pii.KINDS) + " |")
    print("|---:|---:|" + "---:|" * len(pii.KINDS))
    print(f"| {len(web)} | {changed} | " + " | ".join(str(counts[k]) for k in pii.KINDS) + " |")


if __name__ == "__main__":
    main()
