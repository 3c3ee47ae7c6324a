"""Mojibake repair and drop (`curation.filters.fix_encoding`) and its place in the langid stage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from curation.config import LangIdConfig
from curation.documents import read_documents, write_documents
from curation.filters import fix_encoding
from curation.stages import run_langid
from shared_data import DATA, needs

ZH = "基于《跑跑卡丁车》与《泡泡堂》上所开发的游戏，由韩国Nexon开发与发行。中国大陆由盛大游戏运营。"
EN = "It’s a café — naïve “quotes” everywhere, and Danneskjöld paid £6,000 for it."
CLEAN = [
    ZH, EN, "plain ASCII text",
    "西陸蟬聲唱，南冠客思侵。那堪玄鬢影，來對白頭吟。",  # Traditional script, Classical
    "其名字“īśā”意为“出自神灵的”，使用Java和Python训练GPU模型。",  # ftfy.is_bad flags this clean line
    "日本語の文章です。カタカナも含みます。",
    "Ελληνικά και русский текст, 한국어 문장.",
]


def _misread(text: str, codec: str, errors: str = "strict") -> str:
    return text.encode("utf-8").decode(codec, errors=errors)


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_is_left_alone(text: str) -> None:
    assert fix_encoding(text) == (text, None)


@pytest.mark.parametrize("codec", ["latin-1", "sloppy-windows-1252"])
@pytest.mark.parametrize("text", [ZH, EN])
def test_utf8_read_as_latin1_or_cp1252_is_repaired(text: str, codec: str) -> None:
    import ftfy  # noqa: F401,PLC0415 -- registers the sloppy-windows-1252 codec

    assert fix_encoding(_misread(text, codec)) == (text, None)


def test_utf8_read_as_gbk_is_repaired_when_no_byte_was_lost() -> None:
    text = "数据处理 非常好吃"  # its UTF-8 bytes happen to pair up into valid GBK
    damaged = _misread(text, "gbk")
    assert damaged != text
    assert fix_encoding(damaged) == (text, None)


@pytest.mark.parametrize("replacement", ["\ufffd", "?"])
@pytest.mark.parametrize("text", [ZH, EN, "非常好,非常快"])
def test_utf8_read_as_gbk_with_lost_bytes_is_dropped(text: str, replacement: str) -> None:
    damaged = _misread(text, "gbk", "replace").replace("\ufffd", replacement)
    assert fix_encoding(damaged) == (damaged, "mojibake")


def test_the_demo_corpus_example_is_dropped() -> None:
    assert fix_encoding("婢虫床28鏄?笉鏄") == ("婢虫床28鏄?笉鏄", "mojibake")


def test_langid_stage_repairs_before_identifying_and_counts_drops(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": _misread(ZH, "latin-1"), "url": None, "title": "", "source": "t"},  # reads as 'no'
        {"id": "b", "text": _misread(ZH, "gbk", "replace"), "url": None, "title": "", "source": "t"},
        {"id": "c", "text": EN * 3, "url": None, "title": "", "source": "t"},
    ]
    write_documents(rows, tmp_path / "in.parquet")
    stats = run_langid([tmp_path / "in.parquet"], tmp_path / "out", LangIdConfig())
    kept = {r["id"]: r for r in read_documents([tmp_path / "out"])}
    assert kept["a"]["text"] == ZH and kept["a"]["lang"] == "zh"
    assert kept["c"]["text"] == EN * 3
    assert stats["dropped"] == {"mojibake": 1}
    assert stats["encoding_repaired"] == 1


def test_shared_text_damaged_is_repaired_or_dropped_and_clean_kept() -> None:
    """A small sample of the bench's test set (bench/mojibake.py has the full figures)."""
    needs(DATA / "text")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.mojibake import DAMAGE, documents, outcome  # noqa: PLC0415 -- bench code, shared data only

    # short documents keep the test fast; a few C4 pages hold U+FFFD already (damage in the source)
    docs = [d for d in documents(25) if len(d.text) < 2000 and "\ufffd" not in d.text]
    clean = [outcome(d.text, d.text) for d in docs]
    damaged = [outcome(d.text, damage(d.text)) for d in docs for damage in DAMAGE.values()
               if damage(d.text) != d.text]
    assert clean.count("kept") == len(clean)
    assert sum(r in ("repaired", "dropped") for r in damaged) >= 0.99 * len(damaged)


def test_ftfy_is_asked_only_about_lines_that_can_hold_its_mojibake_with_the_same_result():
    import ftfy

    from curation.filters import _FTFY, _fix_text_non_ascii_lines

    clean = "中文段落，“引号”与——破折号…\nplain ASCII line\nCafé, naïve — déjà vu\n全角：ＡＢＣ１２３\n"
    samples = [clean, clean.encode("utf-8").decode("latin-1"), clean.encode("utf-8").decode("cp1252", "replace"),
               clean.encode("utf-8").decode("mac_roman"), "中文“" + "Cafe\u0301".encode("utf-8").decode("latin-1"),
               "no newline at the end: Ã©", "\n\n\u00c3\u00a9\n"]
    for text in samples:
        assert _fix_text_non_ascii_lines(text) == ftfy.fix_text(text, _FTFY)


def _implausibility_by_character(text: str, replacement_cost: float) -> float:
    """The definition in `filters.implausibility`'s docstring, one character at a time."""
    from curation import filters

    cost = 0.0
    for ch in text:
        code = ord(ch)
        if code < 0x80 or ch in filters.COMMON_CJK:
            continue
        if ch == "\ufffd":
            cost += replacement_cost
        elif 0x80 <= code < 0xA0 or 0xE000 <= code < 0xFB00 or 0x3400 <= code < 0xA000:
            cost += 1.0
        else:
            cost += 0.25
    return cost + sum(map(filters._latin_misread, filters._GLUED_CJK.findall(text)))


def test_implausibility_counts_every_character_as_defined() -> None:
    from curation.filters import implausibility

    clean = ["中华人民共和国成立于1949年，首都北京。", "Café crème, naïve façade — 10 €",
             "鬱鬱蔥蔥的樹林", "日本語のテキスト"]
    texts = clean + [_misread(t, codec, "replace") for t in clean for codec in ("gbk", "latin-1", "cp1252")]
    texts += ["\x85\x9f\ue000\ufaff\ufffd\ufffd", "Caf茅 Tr猫s 拢6,000", ""]
    for text in texts:
        for cost in (1.0, 0.25):
            assert implausibility(text, cost) == _implausibility_by_character(text, cost), (text, cost)
