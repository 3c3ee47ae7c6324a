"""Chinese web-spam filter: gambling, porn, SEO link farms, game private servers/cheats and fake certificates.

What it is for: Common Crawl's Chinese pages carry a lot of spam that the quality rules of `curation.filters`
let through when it is written in sentences (a porn story, a hijacked news page with a gambling title). The
filter stage calls `classify(text, title)` on every `zh` document and drops a hit with the reason
`spam:<category>` (`FilterConfig.spam`, `spam_min_score`, `spam_min_density`).

How it scores: a weighted lexicon per category (`curation/spam_data/lexicon.json`, written from general
knowledge of spam vocabulary, not fitted page by page) is matched by two regex tries over the lower-cased
text (terms that start with a Han character; terms that start with a Latin letter or digit, only at a Latin
word start). A category's score is the sum over its terms of weight x occurrences (at most `TERM_CAP` per term);
terms in the title count `TITLE_FACTOR` times (spam pages stuff their titles). In news or reference context
(words such as 警方, 涉嫌, 记者, 经济, 位于 in the text) every term counts half (2-4 such words) or a
quarter (5 or more), so a crime report that names 百家乐 and 时时彩 stays clean; title terms count half when
the title itself holds such a word. Contact cues (加QQ, 加微信) add to the leading category. Two layout tricks
of SEO pages add to `seo`: text cut into bracketed single characters (【随】【着】…) and pinyin glosses after each
character (烟(yan)台市(shi)), both used to dodge search engines' duplicate detection.
A document is spam when its leading category scores at least `min_score` with enough evidence (two distinct
terms, one of weight >= 2; or a weight-3 term in the title; or a layout trick), and its score per 1,000
characters (`density`, length floored at 1,000) is at least `min_density`: one mention in a long article is
not enough.

    .venv/bin/python -m curation.spam "澳门新葡京娱乐城，真人荷官百家乐，注册送彩金，网上开户。"
    .venv/bin/python bench/spam.py    # precision / recall / false-positive rate on ../shared, dev and test
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

LEXICON_PATH = Path(__file__).with_name("spam_data") / "lexicon.json"
CATEGORIES = ("gambling", "porn", "seo", "game_cheat", "fake_cert")
# Defaults of FilterConfig.spam_min_score / spam_min_density, chosen on the dev split (bench/spam.py): clean
# text scored at most 4 there, spam at least 6.
MIN_SCORE = 5.0
MIN_DENSITY = 1.0
# Occurrences counted per term: an on-topic article repeats its word (马会); repetition is another rule's job.
TERM_CAP = 3
TITLE_FACTOR = 2.0
# Distinct news/reference words -> factor on every term: 2-4 of them halve the terms, 5 or more quarter them.
CONTEXT_STEPS = ((5, 0.25), (2, 0.5))
TITLE_CONTEXT_FACTOR = 0.5
STRONG_WEIGHT = 3.0  # a term of this weight in the title is evidence enough
# Layout tricks of SEO spam: each adds LAYOUT_POINTS to `seo` when it occurs at least LAYOUT_MIN_HITS times.
LAYOUT_MIN_HITS = 20
LAYOUT_POINTS = 8.0
_BRACKETED_CHAR = re.compile(r"【[^【】\s]】")
_LATIN = re.compile(r"[a-z0-9]")
_PINYIN_GLOSS = re.compile(r"[\u4e00-\u9fff][(（][a-z]{1,6}[)）]")


@dataclass(frozen=True)
class Lexicon:
    """Term -> (category, weight) for the spam categories and for contact cues, and the context words."""

    terms: dict[str, tuple[str, float]]
    context: frozenset[str]
    han: re.Pattern[str] = field(repr=False)
    latin: re.Pattern[str] = field(repr=False)


@dataclass(frozen=True)
class SpamScore:
    """What `score` found: the leading category, its score and density, and every category's score."""

    category: str | None
    score: float
    density: float
    distinct_terms: int
    evidence: bool
    scores: dict[str, float]

    def is_spam(self, min_score: float = MIN_SCORE, min_density: float = MIN_DENSITY) -> bool:
        """True when the leading category passes both thresholds with enough evidence."""
        return self.category is not None and self.evidence and self.score >= min_score and self.density >= min_density


def _trie_regex(words: list[str]) -> str:
    """One regex alternation for `words` as a trie (shared prefixes factored out), longest match first.

    Python's `re` tries alternatives one by one at each position; a trie makes a position that starts no term
    fail after one character test instead of after hundreds (the filter runs on every zh document). No words:
    a pattern that never matches."""
    if not words:
        return "(?!)"
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return build(trie)


def _patterns(words: list[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(terms that start with a Han character, terms that start with a Latin letter or digit), each one trie.

    Two passes: a trie that starts with plain characters lets `re` skip positions by its first-character set,
    and the Latin trie shares one lookbehind; one alternation of both kinds with a lookbehind per Latin term
    made `score` 5x slower (0.76 vs 0.15 CPU s on 2,208 Wikipedia paragraphs). Latin-initial terms match only
    where they do not continue a longer Latin word ("sex" in "Essex", "av" in "java")."""
    latin = [w for w in words if re.match(r"[a-z0-9]", w)]
    han = [w for w in words if not re.match(r"[a-z0-9]", w)]
    bounded = r"(?<![a-z0-9])" + _trie_regex(latin) + r"(?![a-z0-9])"
    return re.compile(_trie_regex(han)), re.compile(bounded)


@lru_cache(maxsize=4)
def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    """Read the lexicon file (lower-cased; a term in two places keeps its highest weight)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    terms: dict[str, tuple[str, float]] = {}
    for category in (*CATEGORIES, "contact"):
        for term, weight in raw[category].items():
            key = term.lower()
            if key not in terms or terms[key][1] < weight:
                terms[key] = (category, float(weight))
    context = frozenset(raw["context"])
    return Lexicon(terms, context, *_patterns(sorted(terms) + sorted(context)))


def _hits(text: str, lexicon: Lexicon) -> Counter[str]:
    """Occurrences of the lexicon's terms and context words in `text` (lower-cased; leftmost-longest)."""
    text = text.lower()
    counts = Counter(lexicon.han.findall(text))
    if _LATIN.search(text):
        counts.update(lexicon.latin.findall(text))
    return counts


def _category_scores(found: list[tuple[Counter[str], float]], lexicon: Lexicon
                     ) -> tuple[Counter[str], dict[str, set[str]], set[str]]:
    """(score per category incl. `contact`, distinct terms per category, categories with a term of weight >= 2)
    of term counts given with their factor."""
    scores: Counter[str] = Counter()
    distinct: dict[str, set[str]] = {}
    strong: set[str] = set()
    for counts, factor in found:
        for term, n in counts.items():
            if term in lexicon.context:
                continue
            category, weight = lexicon.terms[term]
            scores[category] += weight * min(n, TERM_CAP) * factor
            distinct.setdefault(category, set()).add(term)
            if weight >= 2:
                strong.add(category)
    return scores, distinct, strong


def score(text: str, title: str | None = None, lexicon: Lexicon | None = None) -> SpamScore:
    """Score `text` (and its page title, when known) for every spam category; see the module docstring."""
    lexicon = lexicon or load_lexicon()
    in_text = _hits(text, lexicon)
    in_title = _hits(title, lexicon) if title else Counter()
    context = {term for term in (*in_text, *in_title) if term in lexicon.context}
    text_factor = next((factor for least, factor in CONTEXT_STEPS if len(context) >= least), 1.0)
    # The title is the page's own claim: discounted only by a news word in the title itself (警方破获时时彩案)
    title_factor = TITLE_FACTOR * (TITLE_CONTEXT_FACTOR if any(t in lexicon.context for t in in_title) else 1.0)
    scores, distinct, strong = _category_scores([(in_text, text_factor), (in_title, title_factor)], lexicon)
    layout = (len(_BRACKETED_CHAR.findall(text)) >= LAYOUT_MIN_HITS
              or len(_PINYIN_GLOSS.findall(text)) >= LAYOUT_MIN_HITS)
    if layout:
        scores["seo"] += LAYOUT_POINTS
    ranked = [(scores[c], c) for c in CATEGORIES if scores[c] > 0]
    if not ranked:
        return SpamScore(None, 0.0, 0.0, 0, False, {})
    best, category = max(ranked)
    best += scores["contact"]
    distinct_terms = len(distinct.get(category, ())) + len(distinct.get("contact", ()))
    strong_in_title = any(lexicon.terms.get(t) is not None and lexicon.terms[t][0] == category
                          and lexicon.terms[t][1] >= STRONG_WEIGHT for t in in_title)
    # Enough evidence: two distinct terms, one of them strong; or a layout trick; or a strong term in the title.
    evidence = ((distinct_terms >= 2 and category in strong) or (layout and category == "seo") or strong_in_title)
    density = best * 1000 / max(len(text) + len(title or ""), 1000)
    return SpamScore(category, round(best, 3), round(density, 3), distinct_terms, evidence,
                     {c: round(s, 3) for s, c in ranked})


def classify(text: str, title: str | None = None, min_score: float = MIN_SCORE,
             min_density: float = MIN_DENSITY) -> str | None:
    """`spam:<category>` when the document is spam (gambling, porn, seo, game_cheat, fake_cert), else None."""
    result = score(text, title)
    return f"spam:{result.category}" if result.is_spam(min_score, min_density) else None


if __name__ == "__main__":
    sample = " ".join(sys.argv[1:]) or sys.stdin.read()
    print(score(sample), classify(sample))
