"""curation.langid on short lines: the Japanese/Chinese character model for kanji-only lines, short English
and foreign lines, and text that is only addresses (URLs, e-mail, @handles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation import langid
from curation.langid import identify, kanji_evidence, kanji_says_japanese
from shared_data import DATA, needs  # noqa: E402  (tests/ is on sys.path)

UD = DATA / "lid" / "ud_dev" / "ud_train_dev_sentences.tsv"


def test_short_kanji_only_japanese_lines_are_ja() -> None:
    # No kana at all: the Han rule alone would call these Chinese. 県 (prefecture), 駅 (station) and 広 are
    # written 縣/县, 站 and 廣/广 in Chinese.
    for text in ("神奈川県在住。", "広島駅前。", "千葉県立図書館"):
        assert identify(text)[0] == "ja", text
        assert kanji_says_japanese(text), text


def test_chinese_sharing_kanji_with_japanese_stays_zh() -> None:
    # Traditional and Classical Chinese write many characters Japanese writes too (議員, 學, 出身): no single
    # character is Japanese-only, so the model stays silent.
    for text in ("縣議會議員", "立法院議員選舉", "子曰學而時習之", "靜岡縣出身", "享年八十。", "東京都渋谷区"):
        assert identify(text)[0] == "zh", text
        assert not kanji_says_japanese(text), text


def test_kanji_evidence_sums_and_maxes_the_table() -> None:
    total, strongest = kanji_evidence("県")
    assert strongest == total >= langid.KANJI_JA_MIN_CHAR
    assert kanji_evidence("的")[1] < 0.0  # the commonest Chinese character leans Chinese
    assert kanji_evidence("abc") == (0.0, float("-inf"))  # no Han character: no evidence


def test_kanji_table_is_well_formed() -> None:
    doc = json.loads((Path(langid.__file__).parent / "langid_data" / "kanji_ja_zh.json").read_text("utf-8"))
    assert doc["about"] and doc["unseen"] < 0.0
    assert all(len(char) == 1 and langid._HAN.fullmatch(char) for char in doc["log_odds"])


def test_chinese_with_a_stray_japanese_character_stays_zh() -> None:
    # One 県 in a Chinese sentence: the character is Japanese, the other 26 lean Chinese (sum < 0).
    text = "这个县的议会今天召开会议，讨论了明年的预算和教育政策。県"
    assert kanji_evidence(text)[1] >= langid.KANJI_JA_MIN_CHAR and kanji_evidence(text)[0] < 0.0
    assert identify(text)[0] == "zh"


def test_long_han_text_skips_the_character_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = langid.kanji_says_japanese
    monkeypatch.setattr(langid, "kanji_says_japanese", lambda text: calls.append(text) or real(text))
    identify("今天天气很好，我们去公园散步吧。")
    assert len(calls) == 1
    identify("今天天气很好，我们去公园散步吧。" * 3)  # longer than SHORT_MAX_CHARS: the Han rule alone
    assert len(calls) == 1


def test_every_chinese_ud_line_stays_zh() -> None:
    """zh recall must stay 1.0: every UD train/dev zh and Classical (lzh) line, both split parts."""
    rows = [line.split("\t", 3) for line in needs(UD).read_text(encoding="utf-8").splitlines()[1:]]
    chinese = [text for lang, _, _, text in rows if lang in ("zh", "lzh")]
    assert len(chinese) == 4000
    assert [t for t in chinese if identify(t)[0] != "zh"] == []


def test_short_english_and_foreign_lines() -> None:
    for text in ("Thank you very much.", "See you soon.", "Read more"):
        assert identify(text)[0] == "en" and identify(text)[1] >= 0.5, text
    for text in ("Hola.", "Obrigado.", "Tack så mycket."):
        assert identify(text)[0] != "en", text


def test_addresses_alone_have_no_language() -> None:
    for text in ("www.example.com", "http://example.com/a", "@jsmith", "info@example.org"):
        assert identify(text) == ("", 0.0), text
    # An address inside words does not hide the words.
    assert identify("Visit www.bbc.co.uk today")[0] == "en"
