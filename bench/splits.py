"""Frozen development/test splits of the labelled data in ../shared/data, one rule for every bench.

Why: rules and thresholds tuned on the same data they are measured on look better than they are (the held-out
checks showed it for extraction and short-text language ID). Each bench here therefore tunes on the `dev` part
only and reports `dev` and `test` side by side; the `test` part is never looked at while a rule changes.

The split is a pure function of a stable key, so anyone reproduces it without a stored list:

* key -> blake2b(salt + key) -> a number in [0, 1); `test` when it is below `TEST_FRACTION` (0.3).
* The key groups what must stay together: a web page's *site* (so that one site's templates never span both
  halves), a corpus document's source file and index, a UD sentence's treebank and text.

    .venv/bin/python bench/splits.py       # prints the split sizes of the data this repo benches on
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from collections import Counter
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEST_FRACTION = 0.3
# Changing the salt re-draws every split: never do it to move a test figure.
SALT = b"lmpipe-split-2026-12"


def unit(key: str) -> float:
    """A stable number in [0, 1) for `key`."""
    digest = hashlib.blake2b(SALT + key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(key: str, test_fraction: float = TEST_FRACTION) -> str:
    """'test' or 'dev' for `key` (see the module docstring for what the key should group)."""
    return "test" if unit(key) < test_fraction else "dev"


def site_key(url: str) -> str:
    """The site of a page URL: host without 'www.', last two labels (three for a two-letter country domain
    under a short second level, e.g. bbc.co.uk), so that sub-domains of one site share a split."""
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or url).lower().removeprefix("www.")
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def sentence_key(lang: str, treebank: str, text: str) -> str:
    """The key of one labelled sentence (the UD train/dev file has no sentence ids)."""
    return f"{lang}\t{treebank}\t{text.strip()}"


def doc_key(source: str, index: int) -> str:
    """The key of the `index`-th document of a corpus file."""
    return f"{source}#{index}"


def main() -> None:
    from bench.langid import ud_sentences  # noqa: PLC0415 -- only the printout needs the data

    counts = Counter((s.lang, split_of(sentence_key(s.lang, s.treebank, s.text))) for s in ud_sentences())
    print("| UD lang | dev | test |\n|---|---:|---:|")
    for lang in sorted({lang for lang, _ in counts}):
        print(f"| {lang} | {counts[lang, 'dev']} | {counts[lang, 'test']} |")


if __name__ == "__main__":
    main()
