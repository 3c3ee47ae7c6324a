"""Mojibake: repair and drop of encoding damage (`curation.filters.fix_encoding`), measured on real text
damaged on purpose.

The test set: real zh and en documents from ../shared/data/text (Wikipedia paragraphs, C4/Dolma pages, a
textbook, reviews, instruction answers, Classical poetry), each written as UTF-8 and read back in a wrong
encoding, then stored as UTF-8 again:

* `latin-1`, `cp1252` (the WHATWG table, i.e. what browsers and most HTML decoders use; its five undefined
  bytes map to C1 controls): reversible, ftfy's domain;
* `cp1252-lossy` (strict cp1252 with U+FFFD for the undefined bytes), `gbk` (U+FFFD for invalid pairs),
  `gbk-?` (the same with '?' as the replacement, the demo corpus's "婢虫床28鏄?笉鏄"): bytes are lost, so the
  text can only be dropped.

A damaged document counts as *repaired* when `fix_encoding` returns the original text exactly, *dropped* when
it returns a drop reason, *missed* otherwise. A clean document counts as *changed* when the text comes back
different or dropped. Targets: >= 99% repaired or dropped, <= 0.1% of clean documents changed. The document
set is cut by `bench.splits` (30% frozen test by source file + index): thresholds in `curation.filters` are
chosen on `dev` only; `--test` adds the test columns. Speed: documents per CPU-second of `fix_encoding` on the clean
documents, against ftfy's plain `fix_text` in the same run.

    .venv/bin/python bench/mojibake.py [--limit 1500] [--test]    # ~2-4 min; data from ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ftfy  # noqa: E402

from bench.splits import doc_key, split_of  # noqa: E402
from curation.filters import fix_encoding  # noqa: E402

TEXT = REPO.parent / "shared" / "data" / "text"


class Doc(NamedTuple):
    source: str
    lang: str
    text: str
    split: str


def _jsonl(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)["text"]


def _csv_reviews(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("review"):
                yield row["review"]


def _poems(path: Path) -> Iterator[str]:
    for item in json.loads(path.read_text(encoding="utf-8")):
        lines = item.get("paragraphs") or item.get("content") or []
        if lines:
            yield "\n".join(lines)


def _lines(path: Path) -> Iterator[str]:
    yield from (line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _files(paths: list[Path]) -> Iterator[str]:
    yield from (p.read_text(encoding="utf-8") for p in paths)


SOURCES: dict[str, tuple[str, Callable[[], Iterator[str]]]] = {
    "cmrc2018": ("zh", lambda: _jsonl(TEXT / "zh" / "cmrc2018_wikipedia_contexts.jsonl")),
    "happy-llm": ("zh", lambda: _files(sorted((TEXT / "zh" / "happy-llm").glob("*.md")))),
    "llmbox": ("zh", lambda: _lines(TEXT / "zh" / "llmbox_chinese.txt")),
    "hotel-reviews": ("zh", lambda: _csv_reviews(TEXT / "zh" / "sophonplus_ChnSentiCorp_htl_all.csv")),
    "waimai-reviews": ("zh", lambda: _csv_reviews(TEXT / "zh" / "sophonplus_waimai_10k.csv")),
    "tang-poems": ("zh", lambda: _poems(TEXT / "zh" / "chinese-poetry" / "全唐诗" / "唐诗三百首.json")),
    "lunyu": ("zh", lambda: _poems(TEXT / "zh" / "chinese-poetry" / "论语" / "lunyu.json")),
    "c4": ("en", lambda: _jsonl(TEXT / "en" / "llamafactory_c4_demo.jsonl")),
    "dolma": ("en", lambda: (t for name in ("0091", "0174")
                             for t in _jsonl(TEXT / "en" / f"dolma_cc_en_head-{name}.jsonl"))),
    "wikipedia": ("en", lambda: _lines(TEXT / "en" / "llamafactory_wiki_demo.txt")),
}


def documents(limit: int) -> list[Doc]:
    """Up to `limit` documents of each source, with their frozen split."""
    docs = []
    for source, (lang, read) in SOURCES.items():
        for i, text in enumerate(read()):
            if i >= limit:
                break
            docs.append(Doc(source, lang, text, split_of(doc_key(source, i))))
    return docs


def _gbk(text: str, replacement: str) -> str:
    return text.encode("utf-8").decode("gbk", errors="replace").replace("\ufffd", replacement)


DAMAGE: dict[str, Callable[[str], str]] = {
    "latin-1": lambda t: t.encode("utf-8").decode("latin-1"),
    "cp1252": lambda t: t.encode("utf-8").decode("sloppy-windows-1252"),
    "cp1252-lossy": lambda t: t.encode("utf-8").decode("cp1252", errors="replace"),
    "gbk": lambda t: _gbk(t, "\ufffd"),
    "gbk-?": lambda t: _gbk(t, "?"),
}


def outcome(original: str, text: str) -> str:
    """'repaired', 'dropped' or 'missed' for damaged `text` (or 'kept'/'changed'/'dropped' for clean text)."""
    fixed, reason = fix_encoding(text)
    if reason:
        return "dropped"
    if text == original:
        return "kept" if fixed == original else "changed"
    return "repaired" if fixed == original else "missed"


def quality(docs: list[Doc]) -> tuple[dict, list[tuple[str, Doc, str]]]:
    """Outcome counts per (damage, lang, split), and the misses and clean changes to print."""
    counts: dict[tuple[str, str, str], Counter[str]] = {}
    errors = []
    for doc in docs:
        result = outcome(doc.text, doc.text)
        counts.setdefault(("clean", doc.lang, doc.split), Counter())[result] += 1
        if result != "kept":
            fixed, reason = fix_encoding(doc.text)
            errors.append(("clean", doc, reason or _first_change(doc.text, fixed)))
        for name, damage in DAMAGE.items():
            damaged = damage(doc.text)
            if damaged == doc.text:  # pure ASCII: nothing to damage
                continue
            result = outcome(doc.text, damaged)
            counts.setdefault((name, doc.lang, doc.split), Counter())[result] += 1
            if result == "missed":
                errors.append((name, doc, _first_change(doc.text, fix_encoding(damaged)[0])))
    return counts, errors


def _first_change(before: str, after: str) -> str:
    """The text around the first character where `after` differs from `before`."""
    i = next((k for k, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    return f"{before[max(0, i - 20):i + 20]!r} -> {after[max(0, i - 20):i + 20]!r}"


def _rate(c: Counter[str], good: tuple[str, ...]) -> str:
    total = sum(c.values())
    return f"{sum(c[g] for g in good) / total:.4f} ({total})" if total else "-"


def speed(texts: list[str], rounds: int = 3) -> tuple[float, float]:
    """Documents per CPU-second of `fix_encoding` and of plain `ftfy.fix_text`, interleaved, best of rounds."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for k, fn in enumerate((fix_encoding, ftfy.fix_text)):
            t0 = time.process_time()
            for text in texts:
                fn(text)
            best[k] = min(best[k], time.process_time() - t0)
    return len(texts) / best[0], len(texts) / best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1500, help="documents per source")
    parser.add_argument("--show", type=int, default=8, help="misses and clean changes to print")
    parser.add_argument("--test", action="store_true", help="also the frozen test split (only to report a finished "
                        "change, never while tuning)")
    args = parser.parse_args()
    if not TEXT.exists():
        sys.exit(f"{TEXT} is absent: this bench needs ../shared/data")
    docs = [d for d in documents(args.limit) if args.test or d.split == "dev"]
    counts, errors = quality(docs)
    print(f"mojibake bench, {time.strftime('%Y-%m-%d')}, {platform.machine()} {platform.python_version()}, "
          f"ftfy {ftfy.__version__}, {len(docs)} documents\n")
    print("| text | lang | dev: repaired or dropped | test: repaired or dropped | dev: repaired | test: repaired |")
    print("|---|---|---:|---:|---:|---:|")
    for name in DAMAGE:
        for lang in ("zh", "en"):
            dev, test = (counts.get((name, lang, s), Counter()) for s in ("dev", "test"))
            print(f"| {name} | {lang} | {_rate(dev, ('repaired', 'dropped'))} | {_rate(test, ('repaired', 'dropped'))}"
                  f" | {_rate(dev, ('repaired',))} | {_rate(test, ('repaired',))} |")
    print("\n| clean text | lang | dev: changed or dropped | test: changed or dropped |\n|---|---|---:|---:|")
    for lang in ("zh", "en"):
        dev, test = (counts.get(("clean", lang, s), Counter()) for s in ("dev", "test"))
        print(f"| clean | {lang} | {_rate(dev, ('changed', 'dropped'))} | {_rate(test, ('changed', 'dropped'))} |")
    clean = [d.text for d in docs]
    ours, peer = speed(clean)
    print(f"\n| speed on clean documents | docs/CPU-s | ratio |\n|---|---:|---:|\n| fix_encoding | {ours:,.0f} | "
          f"{ours / peer:.2f}x |\n| ftfy.fix_text (peer) | {peer:,.0f} | 1.00x |")
    dev_errors = [e for e in errors if e[1].split == "dev"]  # test-split errors are never printed
    print(f"\ndev errors: {len(dev_errors)} (test-split examples are not shown)")
    for name, doc, detail in dev_errors[: args.show]:
        print(f"* {name} {doc.source}: {detail}")


if __name__ == "__main__":
    main()
