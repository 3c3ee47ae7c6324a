"""curation.filters (drop reasons) and curation.quality (scores in [0, 1]) on real and crafted texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.config import EnglishFilterConfig, FilterConfig
from curation.filters import check, dup_ngram_fraction
from curation.quality import load

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"


def needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test data)")
    return path


def wiki_paragraph() -> str:
    path = needs(DATA / "quality" / "cs336_quality_fixtures" / "high_quality_wiki_reference.txt")
    return path.read_text(encoding="utf-8")


def test_real_english_and_chinese_prose_pass() -> None:
    cfg = FilterConfig()
    assert check(wiki_paragraph(), "en", cfg) is None
    rows = needs(DATA / "text" / "zh" / "cmrc2018_wikipedia_contexts.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in rows[:50]]
    passed = sum(check(t, "zh", cfg) is None for t in texts)
    assert passed >= 45, passed


def test_repetitive_documents_are_dropped_with_a_reason() -> None:
    cfg = FilterConfig()
    en = "\n".join(["Buy cheap watches online today with free shipping and the best prices."] * 20)
    assert check(en, "en", cfg) == "dup_lines"
    zh = "\n".join(["欢迎访问本站，最新最全的免费资源每天更新，敬请关注我们的网站。"] * 12)
    assert check(zh, "zh", cfg) == "dup_lines"
    # No repeated line, but the same 10-character runs over and over.
    zh_runs = "".join(f"第{i}期香港最快开奖现场直播结果查询" for i in range(40))
    assert check(zh_runs, "zh", cfg) == "dup_char_ngrams"


def test_english_gopher_rules() -> None:
    cfg = FilterConfig()
    assert check("Too short to be a document.", "en", cfg) == "word_count"
    symbols = " ".join(f"#tag{i} word{i} ..." for i in range(40))
    assert check(symbols, "en", cfg) == "symbol_ratio"
    no_stop_words = " ".join(f"alpha{i % 7}beta gamma{i}" for i in range(60))
    assert check(no_stop_words, "en", cfg) == "stop_words"
    # Thresholds are per-language config fields.
    lenient = FilterConfig(en=EnglishFilterConfig(min_words=3, min_stop_words=0))
    assert check("Too short to be a document.", "en", lenient) is None


def test_chinese_character_rules() -> None:
    cfg = FilterConfig()
    assert check("太短了。", "zh", cfg) == "char_count"
    assert check("Latest Submit (811) Medicine, Pharmacy (228) " * 5 + "中文", "zh", cfg) == "cjk_fraction"


def test_dup_ngram_fraction() -> None:
    assert dup_ngram_fraction(list("abcdefghij"), 3) == 0.0
    assert dup_ngram_fraction(list("abcabc"), 3) == 1.0


def test_quality_scores_rank_wiki_above_spam() -> None:
    scorer = load(None)
    low = needs(DATA / "quality" / "cs336_quality_fixtures" / "low_quality_cc.txt").read_text(encoding="utf-8")
    high_score, low_score, empty = scorer.score([wiki_paragraph(), low, ""])
    assert 0.0 <= low_score < high_score <= 1.0
    assert empty == 0.0


def test_quality_agrees_with_dclm_human_labels_better_than_chance() -> None:
    path = needs(DATA / "quality" / "dclm_human_quality" / "majority_minus_agreement.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    scores = load().score([r["text"] for r in rows])
    pos = [s for s, r in zip(scores, rows) if r["label"] == 1]
    neg = [s for s, r in zip(scores, rows) if r["label"] == 0]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc > 0.6, auc  # measured 0.67 on these 218 docs; a learned scorer is a later issue
