"""Training and held-out text for bench/tokenizer.py, read from ../shared/data/text (see its SOURCES.md).

Training: every en and zh file there except the held-out parts. Held out (never trained on):

* `en`: WikiText-2 validation (Wikipedia articles, pre-tokenised with spaces around punctuation);
* `zh`: every 5th CMRC 2018 paragraph (modern Simplified Chinese Wikipedia);
* `zh-classical`: Mencius (孟子, Traditional script, Classical Chinese).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
_WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $", re.M)
_HELD_OUT_CLASSICAL = "四书五经/mengzi.json"


def _jsonl_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [t for line in f if line.strip() and (t := json.loads(line).get("text"))]


def _poetry_docs(node: object) -> list[str]:
    """Every list of strings under a paragraphs/content/para key, joined by newlines, as one document."""
    docs: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("paragraphs", "content", "para") and isinstance(value, list) and value and all(
                isinstance(v, str) for v in value
            ):
                docs.append("\n".join(value))
            elif isinstance(value, (dict, list)):
                docs += _poetry_docs(value)
    elif isinstance(node, list):
        for item in node:
            docs += _poetry_docs(item)
    return docs


def wikitext_articles(path: Path) -> list[str]:
    """WikiText-2 split into articles at its top-level ` = Title = ` lines."""
    text = path.read_text(encoding="utf-8")
    starts = [m.start() for m in _WIKITEXT_TITLE.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:]) if text[a:b].strip()]


def load(root: Path = SHARED_TEXT) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """`(train [(lang, text)], held_out {name: [text]})`; FileNotFoundError when `root` is missing."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found; this bench needs the shared text corpora (see SOURCES.md)")
    en, zh = root / "en", root / "zh"
    train: list[tuple[str, str]] = []
    # English.
    play = (en / "tinyshakespeare.txt").read_text(encoding="utf-8")
    train += [("en", scene) for scene in play.split("\n\n") if scene.strip()]
    train.append(("en", (en / "the-verdict.txt").read_text(encoding="utf-8")))
    with open(en / "llamafactory_wiki_demo.txt", encoding="utf-8") as f:
        train += [("en", line.rstrip("\n")) for line in f if line.strip()]
    for name in ("llamafactory_c4_demo.jsonl", "dolma_cc_en_head-0091.jsonl", "dolma_cc_en_head-0174.jsonl"):
        train += [("en", t) for t in _jsonl_texts(en / name)]
    # Chinese.
    cmrc = _jsonl_texts(zh / "cmrc2018_wikipedia_contexts.jsonl")
    train += [("zh", t) for i, t in enumerate(cmrc) if i % 5]
    train += [("zh", p.read_text(encoding="utf-8")) for p in sorted((zh / "happy-llm").glob("*.md"))]
    llmbox = (zh / "llmbox_chinese.txt").read_text(encoding="utf-8")
    train += [("zh", chunk) for chunk in llmbox.split("\n\n") if chunk.strip()]
    for name in ("sophonplus_waimai_10k.csv", "sophonplus_ChnSentiCorp_htl_all.csv"):
        with open(zh / name, encoding="utf-8") as f:
            train += [("zh", row["review"]) for row in csv.DictReader(f) if row.get("review")]
    poetry = zh / "chinese-poetry"
    for path in sorted(poetry.rglob("*.json")):
        if path.relative_to(poetry).as_posix() != _HELD_OUT_CLASSICAL:
            train += [("zh", d) for d in _poetry_docs(json.loads(path.read_text(encoding="utf-8")))]
    held_out = {
        "en": wikitext_articles(en / "wikitext-2-valid.txt"),
        "zh": [t for i, t in enumerate(cmrc) if i % 5 == 0],
        "zh-classical": _poetry_docs(json.loads((poetry / _HELD_OUT_CLASSICAL).read_text(encoding="utf-8"))),
    }
    return train, held_out
