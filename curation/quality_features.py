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
from collections import Counter
from itertools import chain, repeat
from operator import methodcaller

import numpy as np
import regex

from curation.filters import (
    LATIN_INNER_END,
    LATIN_TERMINAL,
    ZH_INNER_END,
    ZH_TERMINAL,
    NgramIndex,
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
# No '|': a line starting with a pipe is a table row, and table markup is layout, not quality (see
# strip_table_markup).
_BULLETS = ("•", "●", "○", "■", "□", "▪", "►", "▶", "-", "*", "·", ">", "#")
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
    "bullet_lines",         # share of lines starting with a bullet, '#', '>'
    "ellipsis_lines",       # share of lines ending in ... / …
    "stop_words",           # share of units that are function words (English list / Chinese characters)
    "symbols",              # share of characters in Unicode categories S* and C* (symbols, control)
    "digits",               # share of characters that are digits
    "upper",                # share of letters that are upper case
    "punct",                # share of characters that are punctuation
    "dup_line_chars",       # share of characters in lines repeating an earlier line
    "dup_5gram",            # share of units covered by repeated unit 5-grams (Gopher)
    "top_2gram",            # share of characters in the most frequent unit 2-gram (Gopher)
    "log_type_token_100",   # log(mean distinct/100 over 100-unit windows): low for boilerplate, keyword lists
    "mean_word_len",        # mean characters per non-CJK word (clipped at 20)
    "log_units_per_sentence",  # units per sentence end: run-on keyword lists have none
    "urls",                 # URL-like tokens per unit
    "cjk",                  # share of CJK among units: a language indicator the model can interact with
)


# A Markdown/trafilatura table separator row: |---|:-:| (outer pipes optional; checked only on lines holding
# a '|', so a bare '---' rule is left alone).
_TABLE_RULE = re.compile(r"\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?")


def strip_table_markup(text: str) -> str:
    """`text` with Markdown table syntax removed, so that layout markup cannot move the quality score.

    Every line holding a '|' becomes its non-empty '|'-separated pieces, stripped, joined by single spaces:
    a table row ('| a | b |', as trafilatura and Markdown write them), a row without outer pipes and an
    inline separator ('Home | About') alike, so that wrapping a line in pipes never changes what the
    statistics see; '|---|:-:|' separator rows are dropped; lines without '|' are kept as they are.
    Why: the DCLM labels (24 of 120 good vs 15 of 98 bad documents hold a '|') taught the combiner that
    pipes are good, and wrapping each line of a text as '| line |' raised its score ~0.59 → ~0.82
    (trafilatura's one-row table of an archive.org FAQ page 0.88-0.96 vs 0.34-0.62 as paragraphs). Words
    are untouched, so the n-gram features do not change. Cost: '|' no longer counts as a symbol in
    'Home | About' menus (CV AUC on the DCLM labels 0.741 before, 0.742 after; bench/quality.py).
    """
    if "|" not in text:
        return text
    out = []
    for line in text.split("\n"):
        if "|" in line:
            bare = line.strip()
            if _TABLE_RULE.fullmatch(bare):
                continue
            line = " ".join(c for c in (cell.strip() for cell in bare.split("|")) if c)
        out.append(line)
    return "\n".join(out)


def normalised_cut(text: str) -> tuple[str, int]:
    """(the first MAX_CHARS characters of `text` with table markup stripped, the length of the whole text
    after that stripping, estimated beyond MAX_CHARS as the raw length): what the statistics see."""
    cut = strip_table_markup(text[:MAX_CHARS])
    return cut, len(cut) + max(0, len(text) - MAX_CHARS)


def units_of(text: str) -> list[str]:
    """Words (non-CJK runs of letters/digits) and single CJK characters, in order."""
    return _UNIT.findall(text)


# Character classes, counted per distinct character: `Counter(text)` runs in C, and each distinct character
# is classified once by the very patterns above (each matches exactly one character, so the sums equal
# their findall counts). Seven findall passes over the text were 40% of the scorer's time.
_CLASSES = (_CJK_CHAR, _SPACE, _SYMBOL, _DIGIT, _PUNCT, _LETTER, _UPPER)
_CHAR_CLASS: dict[str, tuple[int, ...]] = {}


def _class_counts(text: str) -> list[int]:
    """Occurrences in `text` of each pattern of `_CLASSES` (same numbers as len(pattern.findall(text)))."""
    totals = [0] * len(_CLASSES)
    memo = _CHAR_CLASS
    if len(memo) > 200_000:  # bound the memo (CJK alone has ~90k characters)
        memo.clear()
    for char, n in Counter(text).items():
        flags = memo.get(char)
        if flags is None:
            flags = memo[char] = tuple(1 if p.match(char) else 0 for p in _CLASSES)
        if any(flags):
            for i, flag in enumerate(flags):
                if flag:
                    totals[i] += n
    return totals


def doc_stats(text: str) -> np.ndarray:
    """The `STAT_NAMES` statistics of one text (table markup stripped, see `strip_table_markup`), float64;
    the empty text gets a vector of zeros."""
    cut, n_chars = normalised_cut(text)
    units = units_of(cut)
    return stats_of(cut, n_chars, units, list(map(str.lower, units)))


def stats_of(text: str, n_chars: int, units: list[str], lowered: list[str]) -> np.ndarray:
    """`doc_stats` from parts the caller may share with `ngram_ids_of`: the text as `normalised_cut` gives
    it, the length of the full text, `units_of(text)` and those units lower-cased."""
    lines = lines_of(text)
    if not lines or not units:
        out = np.zeros(len(STAT_NAMES))
        out[0] = math.log1p(n_chars)
        return out
    n_units = len(units)
    cjk_units, n_space, n_symbol, n_digit, n_punct, n_letter, n_upper = _class_counts(text)
    # cjk_units: each CJK character is a unit of its own
    cjk = cjk_units / n_units
    zh = cjk >= 0.3
    terminal, inner = (ZH_TERMINAL, ZH_INNER_END) if zh else (LATIN_TERMINAL, LATIN_INNER_END)
    short = 10 if zh else 30

    n_vis = max(1, len(text) - n_space)
    n_letters = n_letter - cjk_units
    upper = n_upper / max(1, n_letters)
    stop = _STOP_ZH if zh else _STOP_EN
    n_words = n_units - cjk_units
    word_chars = sum(map(len, units)) - cjk_units
    sentence_ends = sum(text.count(m) for m in (("。", "！", "？") if zh else (". ", "! ", "? ", ".\n")))
    sentence_ends += sum(1 for line in lines if line.endswith(terminal))
    grams = NgramIndex(lowered)  # shared by the two n-gram statistics

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
        "symbols": n_symbol / n_vis,
        "digits": n_digit / n_vis,
        "upper": upper,
        "punct": n_punct / n_vis,
        "dup_line_chars": dup_line_fractions(lines)[1],
        "dup_5gram": dup_ngram_fraction(grams, 5),
        "top_2gram": top_ngram_fraction(grams, 2),
        "log_type_token_100": math.log(_windowed_type_token(lowered)),
        "mean_word_len": min(20.0, word_chars / n_words) if n_words else 0.0,
        "log_units_per_sentence": math.log1p(n_units / (1 + sentence_ends)),
        "urls": len(_URL.findall(text)) / n_units,
        "cjk": cjk,
    }
    return np.array([stats[name] for name in STAT_NAMES], dtype=np.float64)


TYPE_TOKEN_WINDOW = 100


def _windowed_type_token(lowered: list[str], window: int = TYPE_TOKEN_WINDOW) -> float:
    """Mean type-token ratio over consecutive `window`-unit pieces (MSTTR); the plain ratio under one window.

    The whole-document ratio falls with length (Heaps' law: correlation -0.89 with log_chars on the DCLM
    labels, -0.29 for this one), so its fitted square punished long articles as repetitive: on held-out
    WikiText-2 articles vs C4 documents left out of training the scorer went 0.883 → 0.932 with this
    statistic (Dolma 0.833 → 0.898, WARC pages 0.896 → 0.908), CV AUC on the labels 0.745 → 0.742 (sd 0.013).
    """
    n = len(lowered)
    if n < window:
        return len(set(lowered)) / n
    ratios = [len(set(lowered[i:i + window])) for i in range(0, n - window + 1, window)]
    return sum(ratios) / (len(ratios) * window)


def ngram_ids(text: str, buckets: int) -> list[int]:
    """Hashed ids (in [0, buckets)) of the unigrams and bigrams of `units_of(text)`, lower-cased.

    CJK characters are units of their own, so for Chinese these are character uni/bigrams; for English
    word uni/bigrams (fastText's `-wordNgrams 2`, the setting DCLM's classifier uses).
    """
    return ngram_ids_of([u.lower() for u in units_of(text[:MAX_CHARS])], buckets)


def ngram_ids_of(lowered: list[str], buckets: int) -> list[int]:
    """`ngram_ids` from the lower-cased units (shared with `stats_of` by `curation.quality`)."""
    # crc32 of the UTF-8 bytes of each unigram, and of each bigram "a b" continued from the crc of "a ": zlib's
    # crc32(data, start) extends a running crc, so crc32(b, crc32(b" ", crc32(a))) == crc32(a + b" " + b).
    # Same ids as hashing the joined strings, with no bigram string built and no Python loop (~3x faster).
    encoded = list(map(str.encode, lowered))  # str.encode: UTF-8
    unigrams = list(map(zlib.crc32, encoded))
    spaced = map(zlib.crc32, repeat(b" ", max(0, len(encoded) - 1)), unigrams)
    hashes = np.fromiter(chain(unigrams, map(zlib.crc32, encoded[1:], spaced)), dtype=np.int64,
                         count=max(0, 2 * len(encoded) - 1))
    return (hashes % buckets).tolist()


# ------------------------------------------------------------------ plain statistics (the default scorer)
# `plain_stats` is what the shipped scorer reads: a dozen statistics computed with C-level str/bytes
# operations only (split, count, translate, set), no regex over the text and no per-character Python loop.
# That makes it ~20x cheaper than `doc_stats` + the hashed n-grams (bench/quality.py, "throughput"), and
# faster per document than a fastText classifier's predict.

PLAIN_NAMES: tuple[str, ...] = (
    "log_chars",            # log(1 + characters)
    "log_units_per_line",   # log(1 + units per non-empty line); a unit is a word or a CJK character
    "terminal_lines",       # share of lines ending a sentence (or holding a sentence end)
    "short_lines",          # share of lines under 30 characters (10 for Chinese)
    "bullet_lines",         # share of lines starting with a bullet, '#', '>'
    "ellipsis_lines",       # share of lines ending in ... / …
    "dup_line_chars",       # share of line characters in lines repeating an earlier line
    "stop_words",           # share of units that are function words (English list / Chinese characters)
    "digits",               # share of non-space bytes that are ASCII digits
    "upper",                # share of ASCII letters that are upper case
    "punct",                # share of non-space characters that are punctuation (ASCII + common CJK)
    "symbols",              # share of non-space bytes that are ASCII symbols (#$%&*+<=>@^_`{}~\ /)
    "mean_word_len",        # mean characters per whitespace-separated word (clipped at 20; Chinese: 0)
    "log_units_per_sentence",  # log(1 + units per sentence end)
    "urls",                 # URL-like tokens per unit
    "type_token_100",       # mean distinct/100 over 100-unit windows of the words (plain ratio below 100)
    "cjk",                  # share of characters that are wide (CJK) characters: the language indicator
)

_ASCII_UPPER = bytes(range(65, 91))
_ASCII_LOWER = bytes(range(97, 123))
_ASCII_DIGITS = b"0123456789"
_ASCII_PUNCT = b"!\"',.:;?()[]-"
_ASCII_SYMBOLS = b"#$%&*+<=>@^_`{}~\\/"
_ZH_PUNCT = "，。、；：？！“”‘’（）《》【】…—"
_ZH_SENTENCE = ("。", "！", "？")
_EN_SENTENCE = (". ", "! ", "? ", ".\n")


def _wide_chars(text: str, raw: bytes) -> int:
    """Characters of 3 UTF-8 bytes (CJK and its punctuation), estimated from byte counts alone: (bytes -
    chars) / 2, so each 2-byte character (é, ü) adds half a count and a 4-byte one 1.5. Exact for ASCII + CJK
    text; a French page with 5 % accented letters reads as 2.5 % "wide", far below the 0.3 of Chinese."""
    extra = len(raw) - len(text)
    return max(0, extra // 2)


def plain_stats(text: str) -> np.ndarray:
    """The `PLAIN_NAMES` statistics of `text` (table markup stripped first, as for `doc_stats`), float64;
    language-aware in the same way (units = words or CJK characters; Chinese line/stop-word rules for text
    whose wide-character share is >= 0.3). The empty text gets zeros (and log_chars 0)."""
    cut, n_chars = normalised_cut(text)
    out = np.zeros(len(PLAIN_NAMES))
    out[0] = math.log1p(n_chars)
    lines = [ln.strip() for ln in cut.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return out
    raw = cut.encode("utf-8", "replace")
    words = cut.split()
    wide = _wide_chars(cut, raw)
    n_vis = max(1, sum(map(len, words)))  # characters that are not whitespace
    cjk = min(1.0, wide / n_vis)
    zh = cjk >= 0.3
    n_units = max(1, len(words) + wide) if zh else max(1, len(words))
    terminal, inner = (ZH_TERMINAL, ZH_INNER_END) if zh else (LATIN_TERMINAL, LATIN_INNER_END)
    short = 10 if zh else 30
    n_lines = len(lines)
    seen: set[str] = set()
    dup_chars = 0
    for ln in lines:
        if ln in seen:
            dup_chars += len(ln)
        seen.add(ln)
    ascii_vis = max(1, len(raw) - wide * 3 - raw.count(b" ") - raw.count(b"\n"))
    letters = len(raw) - len(raw.translate(None, _ASCII_UPPER + _ASCII_LOWER))
    upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
    lowered = cut.lower().split()
    if zh:
        stop = sum(map(cut.count, _STOP_ZH))
        sentence_ends = sum(map(cut.count, _ZH_SENTENCE))
        punct = sum(map(cut.count, _ZH_PUNCT)) + len(raw) - len(raw.translate(None, _ASCII_PUNCT))
    else:
        stop = sum(map(_STOP_EN.__contains__, lowered))
        sentence_ends = sum(map(cut.count, _EN_SENTENCE))
        punct = len(raw) - len(raw.translate(None, _ASCII_PUNCT))
    sentence_ends += sum(map(methodcaller("endswith", terminal), lines))
    stats = (
        math.log1p(n_units / n_lines),
        sum(1 for ln in lines if ln.endswith(terminal) or any(m in ln for m in inner)) / n_lines,
        sum(1 for ln in lines if len(ln) < short) / n_lines,
        sum(map(methodcaller("startswith", _BULLETS), lines)) / n_lines,
        sum(map(methodcaller("endswith", ("...", "…")), lines)) / n_lines,
        dup_chars / max(1, sum(map(len, lines))),
        stop / n_units,
        (len(raw) - len(raw.translate(None, _ASCII_DIGITS))) / ascii_vis,
        upper / max(1, letters),
        punct / n_vis,
        (len(raw) - len(raw.translate(None, _ASCII_SYMBOLS))) / ascii_vis,
        0.0 if zh else min(20.0, (n_vis - punct) / max(1, len(words))),
        math.log1p(n_units / (1 + sentence_ends)),
        (cut.count("http") + cut.count("www.")) / n_units,
        _windowed_type_token(lowered) if lowered else 0.0,
        cjk,
    )
    out[1:] = stats
    return out
