"""The inputs of the learned quality scorer (`curation.quality`): document statistics and hashed n-grams.

`doc_stats(text)` gives a fixed vector of `STAT_NAMES` statistics (length, line structure, stop-word,
symbol, digit and upper-case shares, repetition, punctuation, …) computed the same way for Chinese and
English: a "unit" is a CJK character or a non-CJK word, so length and shares mean the same in both.
Length-like values are log-scaled, so that the small linear model on top sees roughly linear effects.

`ngram_ids(text, buckets)` gives the hashed n-gram feature ids of the DCLM/fastText-style classifier:
lower-cased word unigrams + bigrams for space-separated text, CJK character unigrams + bigrams for Chinese
(no segmenter needed), hashed with a stable hash (zlib.crc32, not Python's salted `hash`).
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import regex

from curation.filters import (
    LATIN_INNER_END,
    LATIN_TERMINAL,
    ZH_INNER_END,
    ZH_TERMINAL,
    dup_line_fractions,
    dup_ngram_fraction,
    lines_of,
    top_ngram_fraction,
)

# Scoring cost is linear in the text; beyond this many characters the statistics barely move, and a 100 MB
# "document" must not stall the stage: longer texts are cut (the length feature still sees the full length).
MAX_CHARS = 200_000

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# A unit: one CJK ideograph, or a run of other letters/digits (a word).
_UNIT = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]"
    r"|[^\W_\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+"
)
_SPACE = regex.compile(r"\s")
_SYMBOL = regex.compile(r"(?V1)[[\p{S}\p{C}]--\s]")  # symbols, control, private use; not whitespace
_DIGIT = regex.compile(r"\p{N}")
_PUNCT = regex.compile(r"\p{P}")
_LETTER = regex.compile(r"\p{L}")
_UPPER = regex.compile(r"\p{Lu}")
_URL = re.compile(r"https?://|www\.|\.com\b|\.html?\b", re.IGNORECASE)
_BULLETS = ("•", "●", "○", "■", "□", "▪", "►", "▶", "-", "*", "·", "|", ">", "#")
_STOP_EN = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we say "
    "her she or an will my one all would there their is are was were been has had which when who what can "
    "if so about into than its also more some".split()
)
# The most frequent function characters of modern written Chinese (about 25-30 % of the characters of
# Wikipedia/news prose, far less in lists of titles, product names and keywords).
_STOP_ZH = frozenset("的了是在和有我他这也就不人都一上中说们为以个到与对而及其之所但被或并由从于将还")

STAT_NAMES: tuple[str, ...] = (
    "log_chars",            # log(1 + characters)
    "log_units",            # log(1 + words or CJK characters)
    "log_lines",            # log(1 + non-empty lines)
    "log_units_per_line",   # long lines = paragraphs; short ones = menus, lists
    "terminal_lines",       # share of lines that end a sentence (or hold a sentence end)
    "short_lines",          # share of lines under 30 characters (10 for Chinese)
    "bullet_lines",         # share of lines starting with a bullet, pipe, '#', '>'
    "ellipsis_lines",       # share of lines ending in ... / …
    "stop_words",           # share of units that are function words (English list / Chinese characters)
    "symbols",              # share of characters in Unicode categories S* and C* (symbols, control)
    "digits",               # share of characters that are digits
    "upper",                # share of letters that are upper case
    "punct",                # share of characters that are punctuation
    "dup_line_chars",       # share of characters in lines repeating an earlier line
    "dup_5gram",            # share of units covered by repeated unit 5-grams (Gopher)
    "top_2gram",            # share of characters in the most frequent unit 2-gram (Gopher)
    "log_type_token",       # log(distinct units / units): low for boilerplate and keyword lists
    "mean_word_len",        # mean characters per non-CJK word (clipped at 20)
    "log_units_per_sentence",  # units per sentence end: run-on keyword lists have none
    "urls",                 # URL-like tokens per unit
    "pipes",                # '|' per line
    "cjk",                  # share of CJK among units: a language indicator the model can interact with
)


def units_of(text: str) -> list[str]:
    """Words (non-CJK runs of letters/digits) and single CJK characters, in order."""
    return _UNIT.findall(text)


def doc_stats(text: str) -> np.ndarray:
    """The `STAT_NAMES` statistics of one text, float64; the empty text gets a vector of zeros."""
    n_chars = len(text)
    text = text[:MAX_CHARS]
    lines = lines_of(text)
    units = units_of(text)
    if not lines or not units:
        out = np.zeros(len(STAT_NAMES))
        out[0] = math.log1p(n_chars)
        return out
    n_units = len(units)
    cjk_units = len(_CJK_CHAR.findall(text))  # each CJK character is a unit of its own
    cjk = cjk_units / n_units
    zh = cjk >= 0.3
    terminal, inner = (ZH_TERMINAL, ZH_INNER_END) if zh else (LATIN_TERMINAL, LATIN_INNER_END)
    short = 10 if zh else 30

    # Character classes counted by the `regex` module in C (a Python loop over characters was half the time).
    n_vis = max(1, len(text) - len(_SPACE.findall(text)))
    n_letters = len(_LETTER.findall(text)) - cjk_units
    upper = len(_UPPER.findall(text)) / max(1, n_letters)
    lowered = [u.lower() for u in units]
    stop = _STOP_ZH if zh else _STOP_EN
    n_words = n_units - cjk_units
    word_chars = sum(map(len, units)) - cjk_units
    sentence_ends = sum(text.count(m) for m in (("。", "！", "？") if zh else (". ", "! ", "? ", ".\n")))
    sentence_ends += sum(1 for line in lines if line.endswith(terminal))

    stats = {
        "log_chars": math.log1p(n_chars),
        "log_units": math.log1p(n_units),
        "log_lines": math.log1p(len(lines)),
        "log_units_per_line": math.log1p(n_units / len(lines)),
        "terminal_lines": sum(1 for ln in lines if ln.endswith(terminal) or any(m in ln for m in inner)) / len(lines),
        "short_lines": sum(1 for ln in lines if len(ln) < short) / len(lines),
        "bullet_lines": sum(1 for ln in lines if ln.startswith(_BULLETS)) / len(lines),
        "ellipsis_lines": sum(1 for ln in lines if ln.endswith(("...", "…"))) / len(lines),
        "stop_words": sum(1 for u in lowered if u in stop) / n_units,
        "symbols": len(_SYMBOL.findall(text)) / n_vis,
        "digits": len(_DIGIT.findall(text)) / n_vis,
        "upper": upper,
        "punct": len(_PUNCT.findall(text)) / n_vis,
        "dup_line_chars": dup_line_fractions(lines)[1],
        "dup_5gram": dup_ngram_fraction(lowered, 5),
        "top_2gram": top_ngram_fraction(lowered, 2),
        "log_type_token": math.log(len(set(lowered)) / n_units),
        "mean_word_len": min(20.0, word_chars / n_words) if n_words else 0.0,
        "log_units_per_sentence": math.log1p(n_units / (1 + sentence_ends)),
        "urls": len(_URL.findall(text)) / n_units,
        "pipes": text.count("|") / len(lines),
        "cjk": cjk,
    }
    return np.array([stats[name] for name in STAT_NAMES], dtype=np.float64)


def ngram_ids(text: str, buckets: int) -> list[int]:
    """Hashed ids (in [0, buckets)) of the unigrams and bigrams of `units_of(text)`, lower-cased.

    CJK characters are units of their own, so for Chinese these are character uni/bigrams; for English
    word uni/bigrams (fastText's `-wordNgrams 2`, the setting DCLM's classifier uses).
    """
    units = [u.lower() for u in units_of(text[:MAX_CHARS])]
    grams = units + [a + " " + b for a, b in zip(units, units[1:])]
    return [zlib.crc32(g.encode("utf-8")) % buckets for g in grams]
