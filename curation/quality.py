"""Document quality score in [0, 1] (higher = better), stored as the `quality_score` column.

For now the score is a transparent function of document statistics, not a learned model; the learned
scorer (e.g. a fastText classifier trained on DCLM-style labels) is a later issue, and `load(path)` is
the seam where it will plug in. Each statistic is mapped to a sub-score in [0, 1]; the score is their
weighted mean:

| sub-score       | statistic                                                        | 1.0 when              | weight |
|-----------------|------------------------------------------------------------------|-----------------------|--------|
| length          | words (space-separated) or characters / 2 (CJK)                  | >= 400 units (log)    | 0.25   |
| punctuation     | share of lines ending in . ! ? " ' ” 。 ！ ？ ： …               | >= 0.6                | 0.25   |
| symbols         | share of characters that are neither letters, digits, space nor punctuation | <= 0.02 (0 at 0.2) | 0.15 |
| stop words      | en only: share of words in a 40-word English function-word list   | >= 0.3                | 0.15   |
| repetition      | 1 - share of characters in duplicated lines                      | no duplicated line    | 0.20   |

For CJK text the stop-word weight is spread over the other sub-scores. Prose (Wikipedia, news) scores high;
menus, link lists, tables of numbers and repeated boilerplate score low.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from curation.filters import cjk_fraction, dup_line_fractions, lines_of

_END_PUNCT = tuple(".!?\"'”’。！？：…」』）)")
# Common English function words; natural English prose has 30-50 % of its words in such a list.
_STOP_WORDS = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we "
    "say her she or an will my one all would there their is are was were".split()
)
_WEIGHTS = {"length": 0.25, "punctuation": 0.25, "symbols": 0.15, "stop_words": 0.15, "repetition": 0.20}


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


def signals(text: str) -> dict[str, float]:
    """The sub-scores (each in [0, 1]) that `score_text` averages; keys as in the module table."""
    lines = lines_of(text)
    if not lines:
        return {name: 0.0 for name in _WEIGHTS}
    cjk = cjk_fraction(text) >= 0.3
    words = text.split()
    units = len("".join(words)) / 2 if cjk else len(words)  # ~2 Chinese characters per word
    chars = [ch for ch in text if not ch.isspace()]
    symbols = sum(1 for ch in chars if unicodedata.category(ch)[0] in "SC")  # symbols, control/private
    result = {
        "length": _clip(math.log1p(units) / math.log1p(400)),
        "punctuation": _clip(sum(line.endswith(_END_PUNCT) for line in lines) / len(lines) / 0.6),
        "symbols": _clip(1.0 - (symbols / max(1, len(chars)) - 0.02) / 0.18),
        "repetition": 1.0 - dup_line_fractions(lines)[1],
    }
    if not cjk:
        stop = sum(1 for w in words if w.lower().strip(".,;:!?\"'()") in _STOP_WORDS)
        result["stop_words"] = _clip(stop / len(words) / 0.3)
    return result


def score_text(text: str) -> float:
    """The weighted mean of `signals(text)`, in [0, 1]."""
    parts = signals(text)
    total = sum(_WEIGHTS[name] for name in parts)
    return sum(_WEIGHTS[name] * value for name, value in parts.items()) / total


@dataclass(frozen=True)
class HeuristicScorer:
    """The statistics-based scorer described in the module docstring."""

    def score(self, texts: list[str]) -> list[float]:
        return [score_text(text) for text in texts]


def load(path: str | None = None) -> HeuristicScorer:
    """Return the quality scorer. `path` is ignored for now: a learned scorer is a later issue."""
    return HeuristicScorer()
