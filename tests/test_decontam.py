"""Decontamination (evals.decontam): shipped eval items pasted into real text are found, changed or not; real
Wikipedia paragraphs are not removed; the drop reason names the set. The full measurement is bench/decontam.py."""

from __future__ import annotations

import json
import random

from evals.decontam import (DecontamIndex, drop_reason, fingerprint, index_for, item_text, overlaps, shipped_index,
                            tokens)
from evals.tasks import SHIPPED, Item, Task, load_suite, reference_texts
from shared_data import DATA, needs  # noqa: E402  (tests/ is on sys.path)

HOST_EN = ("The history of the region is long. Settlers arrived in the eighteenth century and built farms along "
           "the river, and the town grew around the mill that they raised there.")
HOST_ZH = "这座城市位于河流的北岸，历史悠久。十八世纪时，移民沿河开垦农田，小镇围绕他们修建的磨坊逐渐发展起来。"


def _sample_items(per_set: int = 15) -> list[tuple[str, str, str]]:
    rng = random.Random(7)
    out = []
    for task in load_suite(list(SHIPPED)):
        for item in rng.sample(task.items, per_set):
            out.append((task.name, task.lang, item_text(item)))
    return out


def _respell(text: str, rng: random.Random) -> str:
    """Whitespace, punctuation and case changes a copy might carry."""
    swap = {",": "，", ".": "。", "，": ",", "。": ".", "?": "？", "？": "?", "：": ":", ":": "："}
    chars = []
    for ch in text:
        if ch == " ":
            chars.append(rng.choice(["  ", "\n", "\t "]))
        elif ch in swap:
            chars.append(swap[ch] if rng.random() < 0.5 else "")
        elif "\u4e00" <= ch <= "\u9fff" and rng.random() < 0.2:
            chars.append(ch + " ")
        else:
            chars.append(ch)
    return "".join(chars).upper() if rng.random() < 0.5 else "".join(chars).title()


def test_normalisation_ignores_whitespace_punctuation_case_and_width() -> None:
    assert tokens("Don't  PAY\n1,000.5 dollars!") == tokens("dont pay 10005 Dollars")
    assert tokens("中文，ＡＢＣ abc") == ["中", "文", "abc", "abc"]


def test_every_sampled_item_is_found_verbatim_and_respelled() -> None:
    rng = random.Random(0)
    for name, lang, text in _sample_items():
        host = HOST_ZH if lang == "zh" else HOST_EN
        assert name in overlaps(host + "\n" + text + "\n" + host), (name, text)
        changed = _respell(text, rng)
        assert name in overlaps(host + " " + changed + " " + host), (name, changed)


def test_drop_reason_names_the_set_and_clean_text_passes() -> None:
    task = load_suite(["xcopa_zh"])[0]
    assert drop_reason(HOST_ZH + item_text(task.items[3])) == "decontam:xcopa_zh"
    assert drop_reason(HOST_EN) is None and drop_reason("") is None
    passage = reference_texts()["en"][0]
    assert drop_reason("Intro.\n" + passage[1000:1400]) == "decontam:reference_en"
    assert shipped_index().unindexed == {}


def test_short_items_are_counted_not_indexed_and_extra_sets_index() -> None:
    task = Task("mine", "en", [Item("1", ["Q"] * 2, [" tiny", " other"], 0),
                               Item("2", ["What colour is a ripe lemon on the tree in"] * 2, [" summer", " x"], 0)])
    index = DecontamIndex.build([task])
    assert index.unindexed == {"mine": 1} and index.grams == {"mine": 1}
    assert index.overlaps("Kids ask: what colour is a ripe lemon on the tree in Summer?") == ["mine"]
    assert index.overlaps("What colour is a ripe lemon on the tree?") == []


def test_user_sets_join_the_index_and_the_fingerprint_is_stable(tmp_path) -> None:
    row = {"context": "Which river flows through the old capital of the northern", "choices": [" kingdom", " x"],
           "label": 0}
    (tmp_path / "private.jsonl").write_text(json.dumps(row), encoding="utf-8")
    index = index_for((f"private={tmp_path / 'private.jsonl'}",))
    doc = HOST_EN + " which river flows through the old capital of the Northern Kingdom? " + HOST_EN
    assert drop_reason(doc, index) == "decontam:private" and drop_reason(doc) is None
    assert index_for() is shipped_index()
    assert fingerprint() == fingerprint() and len(fingerprint()) == 16


def test_clean_wikipedia_paragraphs_are_kept() -> None:
    """Real zh Wikipedia (CMRC 2018 contexts) and en Wikipedia articles of ../shared: none overlaps an eval set."""
    zh = needs(DATA / "text" / "zh" / "cmrc2018_wikipedia_contexts.jsonl")
    en = needs(DATA / "text" / "en" / "llamafactory_wiki_demo.txt")
    docs = [json.loads(line)["text"] for line in zh.read_text(encoding="utf-8").splitlines()[:400]]
    docs += [line for line in en.read_text(encoding="utf-8").splitlines() if line.strip()][:10]
    removed = [d[:40] for d in docs if overlaps(d)]
    assert removed == []
