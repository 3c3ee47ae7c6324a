"""Decontamination: find documents that contain text of our eval sets, so they never reach a training corpus.

Every shipped eval item (its context with the correct choice, our cloze template words removed) and every
held-out reference text is cut into n-grams of normalised tokens; a document that contains one of those n-grams
overlaps that eval set. Normalisation (the same for items and documents): Unicode NFKC (full-width forms to
ASCII), lower case, then tokens are runs of letters/digits for alphabetic scripts and single characters for CJK
ideographs; whitespace and punctuation never make a token, so re-spacing, re-punctuating and re-casing a copied
item does not hide it.

* English items: word 13-grams (GPT-3's and FineWeb's choice). Chinese items: character 13-grams. Measured on
  real data (bench/decontam.py, bench/RESULTS.md): every n from 8 to 20 finds every planted item; n = 8 removes
  0.45% of clean Chinese Wikipedia paragraphs (5 of 1,104: set phrases that Gaokao questions share with
  Wikipedia), n = 10 and up none. 13 keeps a margin over 10 and is the same number for both languages; 13
  Chinese characters carry about as much text as 8 English words.
* An item shorter than n tokens is indexed whole (one n-gram of its own length) when it has at least
  `MIN_TOKENS` (4) tokens: 2.3% of the shipped items have fewer than 8 (OpenBookQA, PIQA: "A flashlight emits
  particles"), and without them verbatim recall was 97.7%; with them it is 100% and clean Wikipedia still
  loses nothing. Shorter items would be too generic; they are counted as `unindexed` (none shipped).
* Lookup is one pass over the document's `MIN_TOKENS`-grams (the anchor every indexed gram starts with): each
  token hashed once, the anchors of all positions mixed in numpy and looked up in the sorted anchor keys; only an
  anchor hit checks the longer grams that start there (3x less CPU than a Python hash per position).

API: `overlaps(text) -> [set names]` and `drop_reason(text, index) -> "decontam:<set>" | None` on the shipped
index (built once per process, < 1 s); `index_for(extra)` adds the user's sets (``eval.extra_tasks`` syntax);
`fingerprint()` for the id of an artifact decontaminated with this index.
Measured on real data by bench/decontam.py.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

import numpy as np

from evals.tasks import SHIPPED, Item, Task, data_digest, load_suite, reference_texts

N = {"en": 13, "zh": 13}  # n-gram size per item language (module docstring: why)
MIN_TOKENS = 4  # shorter items are not indexed (none of the shipped ones); 4 finds every shipped item
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
# Removed before tokenising, so dropping them in a copy changes nothing: apostrophes inside words ("don't" and
# "dont" are one token) and separators inside numbers ("3.5" and "35", "1,000" and "1000").
# The character comes first in each branch so the engine skips ahead to candidates (2.6x faster than lookbehinds).
_JOINERS = re.compile(r"['’‘`](?<=\w['’‘`])(?=\w)|[.,](?<=\d[.,])(?=\d)")
_TEMPLATE = re.compile(r"^\s*(question:|问题：)|(\n\s*answer:|\n\s*答案：)\s*$", re.IGNORECASE)


def tokens(text: str) -> list[str]:
    """Normalised tokens: NFKC, lower case, CJK ideographs one by one, other letters/digits as runs."""
    if not text.isascii():  # NFKC leaves ASCII as it is
        text = unicodedata.normalize("NFKC", text)
    return _TOKEN.findall(_JOINERS.sub("", text.lower()))


def item_text(item: Item) -> str:
    """What a copy of the item in a document would read like: context (template words removed) + answer."""
    context = item.contexts[item.label]
    return _TEMPLATE.sub("", _TEMPLATE.sub("", context)) + item.choices[item.label]


def _key(toks: list[str]) -> int:
    return hash("\x1f".join(toks))


def _anchor_keys(toks: list[str], m: int) -> np.ndarray:
    """The anchor key of every position i (a mix of the hashes of toks[i:i+m]), as uint64: equal token runs give
    equal keys; different runs may collide, which only costs the exact check of the grams behind the anchor."""
    hashes = np.fromiter(map(hash, toks), dtype=np.int64, count=len(toks)).view(np.uint64)
    n = len(toks) - m + 1
    if n <= 0:
        return np.zeros(0, np.uint64)
    keys = hashes[:n].copy()
    for j in range(1, m):  # uint64 arithmetic wraps, as the mix wants
        keys = keys * np.uint64(0x100000001B3) ^ hashes[j:j + n]
    return keys


@dataclass
class DecontamIndex:
    # anchor (first MIN_TOKENS tokens) -> {(gram length, hash of the whole gram): set name}
    anchors: dict[int, dict[tuple[int, int], str]] = field(default_factory=dict)
    grams: dict[str, int] = field(default_factory=dict)  # set name -> grams indexed
    unindexed: dict[str, int] = field(default_factory=dict)  # set name -> items too short to index
    min_tokens: int = MIN_TOKENS
    # the anchor keys, sorted; built on the first lookup after an `add`
    _sorted: np.ndarray | None = field(default=None, repr=False, compare=False)

    def add(self, name: str, text: str, n: int) -> None:
        toks = tokens(text)
        if len(toks) < self.min_tokens:
            self.unindexed[name] = self.unindexed.get(name, 0) + 1
            return
        k = min(n, len(toks))
        anchors = _anchor_keys(toks, self.min_tokens).tolist()  # the gram at i starts with the anchor at i
        for i in range(len(toks) - k + 1):
            slot = self.anchors.setdefault(anchors[i], {})
            slot.setdefault((k, _key(toks[i:i + k])), name)
            self.grams[name] = self.grams.get(name, 0) + 1
        self._sorted = None

    @classmethod
    def build(cls, tasks: Iterable[Task], references: dict[str, list[str]] | None = None,
              n: dict[str, int] | None = None, min_tokens: int = MIN_TOKENS) -> "DecontamIndex":
        n = n or N
        index = cls(min_tokens=min_tokens)
        for task in tasks:
            for item in task.items:
                index.add(task.name, item_text(item), n.get(task.lang, n["en"]))
        for lang, texts in (references or {}).items():
            for text in texts:
                index.add(f"reference_{lang}", text, n.get(lang, n["en"]))
        return index

    def overlaps(self, text: str) -> list[str]:
        """Names of the eval sets `text` contains an n-gram of (sorted; empty for a clean document)."""
        toks = tokens(text)
        found: set[str] = set()
        if self._sorted is None:
            self._sorted = np.sort(np.fromiter(self.anchors, dtype=np.uint64, count=len(self.anchors)))
        keys = _anchor_keys(toks, self.min_tokens)
        if not len(keys) or not len(self._sorted):
            return []
        at = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        for i in np.flatnonzero(self._sorted[at] == keys).tolist():
            slot = self.anchors[int(keys[i])]
            for (k, h), name in slot.items():
                if name not in found and i + k <= len(toks) and _key(toks[i:i + k]) == h:
                    found.add(name)
        return sorted(found)


@lru_cache(maxsize=1)
def shipped_index() -> DecontamIndex:
    """The index of every shipped eval set and reference text (built on first use, once per process)."""
    return DecontamIndex.build(load_suite(list(SHIPPED)), reference_texts())


@lru_cache(maxsize=4)
def index_for(extra: tuple[str, ...] = ()) -> DecontamIndex:
    """The shipped index, plus the user's own sets (``[NAME=]PATH`` as in ``eval.extra_tasks``) when given."""
    if not extra:
        return shipped_index()
    return DecontamIndex.build(load_suite(list(SHIPPED), list(extra)), reference_texts())


def fingerprint() -> str:
    """sha256 over the shipped eval files and the n-gram settings: what a decontaminated artifact's id should
    cover, so new eval data or another n gives a new artifact."""
    return hashlib.sha256(repr((sorted(N.items()), MIN_TOKENS, data_digest())).encode()).hexdigest()[:16]


def overlaps(text: str) -> list[str]:
    return shipped_index().overlaps(text)


def drop_reason(text: str, index: DecontamIndex | None = None) -> str | None:
    """``decontam:<set>`` for a document that contains eval text (the first set by name), else None."""
    found = (index or shipped_index()).overlaps(text)
    return f"decontam:{found[0]}" if found else None
