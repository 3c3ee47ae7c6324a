"""Heuristic quality filters: a Gopher-style subset for English, character rules for Chinese, and
repetition rules for every language.

`check(text, lang, cfg)` returns the first failed rule's name (the drop reason) or None. Rule order goes
from cheap to expensive. Languages other than en/zh get the repetition rules only (words split on spaces);
their own thresholds are a later issue.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from curation.config import ChineseFilterConfig, EnglishFilterConfig, FilterConfig, RepetitionFilterConfig

# Gopher's stop-word rule: a real English text contains at least two of these.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_ALPHA = re.compile(r"[^\W\d_]")  # any letter, in any script
_ELLIPSIS_END = ("...", "…")
_WORD_NGRAM = 5
_CHAR_NGRAM = 10


def lines_of(text: str) -> list[str]:
    """Non-empty lines, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def dup_line_fractions(lines: Sequence[str]) -> tuple[float, float]:
    """(share of lines that repeat an earlier line, share of characters in those repeated lines)."""
    if not lines:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_lines = dup_chars = 0
    for line in lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        else:
            seen.add(line)
    total_chars = sum(len(line) for line in lines)
    return dup_lines / len(lines), dup_chars / max(1, total_chars)


def dup_ngram_fraction(tokens: Sequence[str], n: int) -> float:
    """Share of tokens covered by n-grams that occur more than once (Gopher's duplicate n-gram measure)."""
    if len(tokens) < n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    counts = Counter(grams)
    covered = bytearray(len(tokens))
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = b"\x01" * n
    return sum(covered) / len(tokens)


def cjk_fraction(text: str) -> float:
    """Share of CJK ideographs among non-space characters."""
    chars = "".join(text.split())
    return len(_CJK.findall(chars)) / len(chars) if chars else 0.0


def _check_repetition(text: str, cfg: RepetitionFilterConfig) -> str | None:
    dup_lines, dup_chars = dup_line_fractions(lines_of(text))
    if dup_lines > cfg.max_dup_line_fraction:
        return "dup_lines"
    if dup_chars > cfg.max_dup_line_char_fraction:
        return "dup_line_chars"
    return None


def _check_english(text: str, words: list[str], cfg: EnglishFilterConfig) -> str | None:
    if not cfg.min_words <= len(words) <= cfg.max_words:
        return "word_count"
    mean_len = sum(len(w) for w in words) / len(words)
    if not cfg.min_mean_word_length <= mean_len <= cfg.max_mean_word_length:
        return "mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / len(words) > cfg.max_symbol_word_ratio:
        return "symbol_ratio"
    lines = lines_of(text)
    if lines and sum(line.endswith(_ELLIPSIS_END) for line in lines) / len(lines) > cfg.max_ellipsis_line_fraction:
        return "ellipsis_lines"
    if sum(bool(_ALPHA.search(w)) for w in words) / len(words) < cfg.min_alpha_word_fraction:
        return "alpha_words"
    lowered = {w.lower().strip(".,;:!?\"'()") for w in words}
    if len(GOPHER_STOP_WORDS & lowered) < cfg.min_stop_words:
        return "stop_words"
    return None


def _check_chinese(text: str, cfg: ChineseFilterConfig, repetition: RepetitionFilterConfig) -> str | None:
    chars = "".join(text.split())
    if not cfg.min_chars <= len(chars) <= cfg.max_chars:
        return "char_count"
    if cjk_fraction(chars) < cfg.min_cjk_fraction:
        return "cjk_fraction"
    reason = _check_repetition(text, repetition)
    if reason:
        return reason
    if dup_ngram_fraction(chars, _CHAR_NGRAM) > cfg.max_dup_char_ngram_fraction:
        return "dup_char_ngrams"
    return None


def check(text: str, lang: str | None, cfg: FilterConfig) -> str | None:
    """Return the drop reason of the first rule `text` fails, or None when it passes every rule."""
    if lang == "zh":
        return _check_chinese(text, cfg.zh, cfg.repetition)
    words = text.split()
    if not words:
        return "word_count"
    if lang == "en":
        reason = _check_english(text, words, cfg.en)
        if reason:
            return reason
    reason = _check_repetition(text, cfg.repetition)
    if reason:
        return reason
    if dup_ngram_fraction([w.lower() for w in words], _WORD_NGRAM) > cfg.repetition.max_dup_word_ngram_fraction:
        return "dup_word_ngrams"
    return None
