"""Heuristic quality filters: Gopher, C4 and FineWeb rules for English, character rules for Chinese, and
Gopher's repetition rules for every language.

What it is for: the `filter` stage (`curation.stages.run_filter`) calls `check(text, lang, cfg)` on every
document; it returns the name of the first rule the text fails (the drop reason) or None. Rules run from cheap
to expensive. Thresholds live in `curation.config.FilterConfig`, one section per language.

* English (`en`): Gopher quality (word count, mean word length, symbol ratio, bullet and ellipsis lines,
  alphabetic words, stop words), C4 document rules (lorem ipsum, curly bracket; C4's terminal-punctuation *line*
  rule is left out, FineWeb's line-punctuation ratio stands in for it), FineWeb (line punctuation, short
  lines, newline/word ratio), then Gopher repetition (duplicate lines and paragraphs, top word 2-4-grams,
  duplicate word 5-grams). The rules follow datatrove's GopherQuality/C4Quality/FineWebQuality filters.
* Chinese (`zh`): after the length rule, web spam (`curation.spam`: gambling, porn, SEO link farms, game
  private servers/cheats, fake certificates; drop reason `spam:<category>`, switch `FilterConfig.spam`), then
  rules on characters, since Chinese has no spaces between words: CJK share, line-ending (or inner
  sentence-ending) punctuation including Chinese punctuation, short lines, site-boilerplate lines, duplicate
  lines and paragraphs, the most frequent character 4-gram, duplicate character 10-grams.
* Other languages: the repetition rules only (no thresholds of their own yet).

    .venv/bin/python -c "from curation.filters import check; from curation.config import FilterConfig; \\
        print(check('太短了。', 'zh', FilterConfig()))"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import repeat

import ftfy
import numpy as np

from curation import spam
from curation.config import ChineseFilterConfig, EnglishFilterConfig, FilterConfig, RepetitionFilterConfig

# Gopher's stop-word rule: a real English text contains at least two of these.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_NON_CJK_WORD = re.compile(
    r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]+")
_ALPHA_WORD = re.compile(r"[^\W\d_]\S*")  # from a word's first letter to its end
_ASCII = re.compile(r"[\x00-\x7f]+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_ELLIPSIS_END = ("...", "…")
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "◆", "◇", "►", "▶", "-", "*", "·", "‣", "⁃")
# Line-final characters that end a sentence (closing quotes and brackets count: 他说：“好。”).
LATIN_TERMINAL = (".", "!", "?", '"', "'", ":", ";", "”", "’", ")")
ZH_TERMINAL = ("。", "！", "？", "；", "…", "」", "』", "”", "）", "：", "．", *LATIN_TERMINAL)
LATIN_INNER_END = (". ", "! ", "? ")
ZH_INNER_END = ("。", "！", "？")
# Site boilerplate that turns up on Chinese web pages' navigation, footers and link farms (our own list).
ZH_BOILERPLATE = (
    "版权所有", "版权声明", "免责声明", "设为首页", "加入收藏", "网站地图", "联系我们", "关于我们", "友情链接",
    "ICP备", "icp备", "公网安备", "All Rights Reserved", "all rights reserved", "copyright", "Copyright",
    "上一篇", "下一篇", "返回顶部", "点击进入", "点击查看", "扫一扫", "分享到", "登录 注册", "用户名", "密码",
)
_WORD_NGRAM = 5
_CHAR_NGRAM = 10
_TOP_CHAR_NGRAM = 4
_SHORT_LINE_EN = 30
_SHORT_LINE_ZH = 10


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
    total_chars = sum(map(len, lines))
    return dup_lines / len(lines), dup_chars / max(1, total_chars)


class NgramIndex:
    """Exact ids of the n-grams of one token sequence (words, or the characters of a str), shared by the
    n-gram measures below: `check` asks for the top 2-, 3- and 4-gram and the duplicated 5-grams of one text,
    the quality statistics for the top 2-gram and duplicated 5-grams.

    Each token gets a dense integer id; the (k+1)-gram ids are the distinct pairs (k-gram id, next token id),
    renumbered densely by `np.unique`, so equal n-grams get equal ids and different ones different ids (no
    hashing, no collisions) and the numbers below equal those of counting tuples of tokens with a `Counter`.
    Why: building a tuple per n-gram for every n was most of the filter stage's CPU and, in a fresh process,
    ~0.1 s of memory growth on the bench's 56 pages; the integer arrays cost a fraction of it.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self.size = len(tokens)
        if isinstance(tokens, str):  # characters: their code points are ids already, every token 1 character
            self.chars = len(tokens)
            self._lengths: np.ndarray | None = None
            base = np.frombuffer(tokens.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        else:
            index = {token: i for i, token in enumerate(dict.fromkeys(tokens))}  # first-seen order
            base = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=self.size)
            self._lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=self.size)
            self.chars = int(self._lengths.sum())
        self._base = base
        self._radix = int(base.max()) + 1 if self.size else 1
        self._grams: dict[int, np.ndarray] = {1: base}

    def grams(self, n: int) -> np.ndarray:
        """Ids of the n-grams in order (len(tokens) - n + 1 of them); equal ids = equal n-grams."""
        if n in self._grams:
            return self._grams[n]
        k = max(k for k in self._grams if k < n)
        ids = self._grams[k]
        while k < n:
            # (k+1)-gram i = (k-gram i, token i + k); both ids are < max(len, radix), so the key fits int64
            key = ids[: self.size - k] * self._radix + self._base[k:]
            ids = np.unique(key, return_inverse=True)[1].reshape(-1)
            k += 1
            self._grams[k] = ids
        return ids

    def gram_chars(self, start: int, n: int) -> int:
        """Characters of the n tokens from position `start`."""
        if self._lengths is None:
            return n
        return int(self._lengths[start : start + n].sum())

    def top_fraction(self, n: int) -> float:
        """`top_ngram_fraction` of the tokens."""
        if self.size < n:
            return 0.0
        grams = self.grams(n)
        counts = np.bincount(grams)
        count = int(counts.max())
        if count < 2:
            return 0.0
        # Counter.most_common(1) returns, among the most frequent n-grams, the one seen first: do the same (the
        # tied n-grams may differ in length)
        first = np.full(len(counts), len(grams), dtype=np.int64)
        np.minimum.at(first, grams, np.arange(len(grams), dtype=np.int64))
        start = int(first[counts == count].min())
        return count * self.gram_chars(start, n) / max(1, self.chars)

    def dup_fraction(self, n: int) -> float:
        """`dup_ngram_fraction` of the tokens."""
        if self.size < n:
            return 0.0
        grams = self.grams(n)
        counts = np.bincount(grams)
        if int(counts.max()) < 2:  # no n-gram repeats (the common case for real prose)
            return 0.0
        # Starts of repeated n-grams, then every token they cover.
        starts = np.flatnonzero(counts[grams] > 1)
        covered = np.zeros(self.size, dtype=bool)
        for k in range(n):
            covered[starts + k] = True
        return int(np.count_nonzero(covered)) / self.size


def dup_ngram_fraction(tokens: Sequence[str] | NgramIndex, n: int) -> float:
    """Share of tokens covered by n-grams that occur more than once (Gopher's duplicate n-gram measure).

    `tokens`: words, a str (its characters are the tokens), or an `NgramIndex` of either to share its work
    with other measures of the same tokens.
    """
    return (tokens if isinstance(tokens, NgramIndex) else NgramIndex(tokens)).dup_fraction(n)


def top_ngram_fraction(tokens: Sequence[str] | NgramIndex, n: int) -> float:
    """Share of the tokens' characters covered by the most frequent n-gram (Gopher's top n-gram measure).

    Counted as occurrences x characters of the n-gram, over the characters of all tokens; 0 when the most
    frequent n-gram occurs once. `tokens` as in `dup_ngram_fraction`.
    """
    return (tokens if isinstance(tokens, NgramIndex) else NgramIndex(tokens)).top_fraction(n)


def cjk_fraction(text: str) -> float:
    """Share of CJK ideographs among CJK ideographs + words of other scripts (digits and symbols not counted).

    One Han character weighs about as much as one word, so a Chinese page with code or English terms scores
    high while a menu or list of Latin links with a few Han characters scores low.
    """
    cjk = len(_CJK.findall(text))
    other_words = len(_NON_CJK_WORD.findall(text))
    return cjk / (cjk + other_words) if cjk else 0.0


def has_sentence_end(line: str, terminal: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """True when `line` ends with terminal punctuation or holds a sentence end inside.

    FineWeb counts only line ends; counting inner sentence ends too keeps one-paragraph-per-line text (a
    truncated Wikipedia paragraph) while titles, menus and link lists, which have neither, still fail.
    """
    return line.endswith(terminal) or any(mark in line for mark in inner)


def _fraction(lines: Sequence[str], predicate) -> float:  # type: ignore[no-untyped-def]
    return sum(1 for line in lines if predicate(line)) / len(lines) if lines else 0.0


def _share(flags: Iterable[bool], lines: Sequence[str]) -> float:
    """`_fraction` from per-line booleans computed by a C-level `map` (no Python call per line: the line
    rules were ~1/3 of the filter stage on pages of thousands of short lines, e.g. the Heritrix crawl)."""
    return sum(flags) / len(lines) if lines else 0.0


def _short_share(lines: Sequence[str], limit: int) -> float:
    """Share of lines of at most `limit` characters."""
    return sum(map(limit.__ge__, map(len, lines))) / len(lines) if lines else 0.0


def _check_repetition(text: str, lines: list[str], cfg: RepetitionFilterConfig) -> str | None:
    dup_lines, dup_chars = dup_line_fractions(lines)
    if dup_lines > cfg.max_dup_line_fraction:
        return "dup_lines"
    if dup_chars > cfg.max_dup_line_char_fraction:
        return "dup_line_chars"
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    if len(paragraphs) > 1 and dup_line_fractions(paragraphs)[0] > cfg.max_dup_paragraph_fraction:
        return "dup_paragraphs"
    return None


def _check_english(text: str, words: list[str], lines: list[str], cfg: EnglishFilterConfig) -> str | None:
    # Gopher quality
    if not cfg.min_words <= len(words) <= cfg.max_words:
        return "word_count"
    mean_len = sum(map(len, words)) / len(words)
    if not cfg.min_mean_word_length <= mean_len <= cfg.max_mean_word_length:
        return "mean_word_length"
    symbols = text.count("#") + text.count("...") + text.count("…")
    if symbols / len(words) > cfg.max_symbol_word_ratio:
        return "symbol_ratio"
    if _share(map(str.startswith, lines, repeat(_BULLETS)), lines) > cfg.max_bullet_line_fraction:
        return "bullet_lines"
    if _share(map(str.endswith, lines, repeat(_ELLIPSIS_END)), lines) > cfg.max_ellipsis_line_fraction:
        return "ellipsis_lines"
    # Words holding a letter, counted in one regex pass over the text: a match starts at a word's first
    # letter and runs to the word's end (\S and str.split share the definition of whitespace).
    if len(_ALPHA_WORD.findall(text)) / len(words) < cfg.min_alpha_word_fraction:
        return "alpha_words"
    # distinct words (~3x fewer to strip), lower-cased and stripped by C-level maps
    lowered = set(map(str.strip, map(str.lower, set(words)), repeat(".,;:!?\"'()")))
    if len(GOPHER_STOP_WORDS & lowered) < cfg.min_stop_words:
        return "stop_words"
    # C4 document rules
    if cfg.c4_lorem_ipsum and "lorem ipsum" in text.lower():
        return "c4_lorem_ipsum"
    if cfg.c4_curly_bracket and "{" in text:
        return "c4_curly_bracket"
    # FineWeb
    punct = _fraction(lines, lambda line: has_sentence_end(line, LATIN_TERMINAL, LATIN_INNER_END))
    if punct < cfg.min_line_punct_fraction:
        return "line_punct"
    if _short_share(lines, _SHORT_LINE_EN) > cfg.max_short_line_fraction:
        return "short_lines"
    if text.count("\n") / len(words) > cfg.max_newline_word_ratio:
        return "list_ratio"
    return None


def _check_chinese(text: str, lines: list[str], cfg: FilterConfig, title: str | None) -> str | None:
    chars = "".join(text.split())
    if not cfg.zh.min_chars <= len(chars) <= cfg.zh.max_chars:
        return "char_count"
    # Spam before the quality rules: much spam fails them too, and the corpus report should count it as spam.
    if cfg.spam:
        reason = spam.classify(text, title, cfg.spam_min_score, cfg.spam_min_density)
        if reason:
            return reason
    return _check_chinese_quality(text, chars, lines, cfg.zh, cfg.repetition)


def _check_chinese_quality(
    text: str, chars: str, lines: list[str], cfg: ChineseFilterConfig, repetition: RepetitionFilterConfig
) -> str | None:
    if cjk_fraction(text) < cfg.min_cjk_fraction:
        return "cjk_fraction"
    if _fraction(lines, lambda line: has_sentence_end(line, ZH_TERMINAL, ZH_INNER_END)) < cfg.min_line_punct_fraction:
        return "line_punct"
    if _short_share(lines, _SHORT_LINE_ZH) > cfg.max_short_line_fraction:
        return "short_lines"
    if _fraction(lines, lambda line: any(p in line for p in ZH_BOILERPLATE)) > cfg.max_boilerplate_line_fraction:
        return "boilerplate_lines"
    reason = _check_repetition(text, lines, repetition)
    if reason:
        return reason
    # Character n-grams over the non-ASCII characters: the Chinese text itself, not embedded code or URLs
    # (a textbook's code blocks repeat a lot; Latin junk is caught by the line rules above).
    han = NgramIndex(_ASCII.sub("", chars))
    if top_ngram_fraction(han, _TOP_CHAR_NGRAM) > cfg.max_top_char_ngram_fraction:
        return "top_char_ngram"
    if dup_ngram_fraction(han, _CHAR_NGRAM) > cfg.max_dup_char_ngram_fraction:
        return "dup_char_ngrams"
    return None


def check(text: str, lang: str | None, cfg: FilterConfig, title: str | None = None) -> str | None:
    """Return the drop reason of the first rule `text` fails, or None when it passes every rule.

    `title`, the page title when the document has one, is read by the Chinese spam check only."""
    lines = lines_of(text)
    if lang == "zh":
        return _check_chinese(text, lines, cfg, title)
    words = text.split()
    if not words:
        return "word_count"
    if lang == "en":
        reason = _check_english(text, words, lines, cfg.en)
        if reason:
            return reason
    reason = _check_repetition(text, lines, cfg.repetition)
    if reason:
        return reason
    lowered = NgramIndex(list(map(str.lower, words)))  # one index for the four n-gram rules
    for n, limit in sorted(cfg.repetition.max_top_word_ngram_fraction.items()):
        if top_ngram_fraction(lowered, n) > limit:
            return f"top_{n}_gram"
    if dup_ngram_fraction(lowered, _WORD_NGRAM) > cfg.repetition.max_dup_word_ngram_fraction:
        return "dup_word_ngrams"
    return None


# ------------------------------------------------------------------------------------ encoding damage
# Only ftfy's encoding repairs: its other fixes (curly quotes, full-width punctuation, NFC, line breaks, HTML
# entities) would change clean text, and the target is <= 0.1% of clean documents changed.
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False, remove_terminal_escapes=False, fix_latin_ligatures=False, fix_character_width=False,
    uncurl_quotes=False, fix_line_breaks=False, fix_surrogates=False, remove_control_chars=False,
    normalization=None, explain=False,
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_REPLACEMENT = "\ufffd"


def _common_cjk() -> frozenset[str]:
    """The 3,755 level-1 characters of GB2312, read from the codec (no data file): they cover nearly all of
    modern Simplified Chinese text, while UTF-8 bytes read as GBK land mostly on GBK's rare rows and its
    extensions (婢虫床, 鏄, 笉, 鈥檚, 茅). Adding Big5's frequent Traditional characters was measured and
    rejected: GBK's extension rows hold them too, so mojibake looked cleaner (bench/mojibake.py, dev split)."""
    chars = set()
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:  # the five empty cells at the end of row 0xD7
                continue
    return frozenset(chars)


COMMON_CJK = _common_cjk()


def implausibility(text: str, replacement_cost: float = 1.0) -> float:
    """How unlike clean text the non-ASCII characters of `text` are: 1 per C1 control, private-use or rare CJK
    character (a CJK ideograph outside `COMMON_CJK`), `replacement_cost` per U+FFFD, 0.25 per other non-ASCII
    character outside the common CJK set (Latin letters with accents, symbols), 0 for common CJK and ASCII."""
    odd = "".join(_ODD_RUN.findall(text))  # the non-ASCII characters outside COMMON_CJK, found in C
    replaced = odd.count(_REPLACEMENT)
    rare = len(_RARE.findall(odd))
    # every term is a multiple of 0.25 (replacement_cost is 1 or 0.25): the sum is exact in any order
    cost = 0.25 * (len(odd) - rare - replaced) + rare + replacement_cost * replaced
    return cost + sum(map(_latin_misread, _GLUED_CJK.findall(text)))


# Two regexes instead of a Python loop over every non-ASCII character: 2x faster on Chinese text, same sums.
_ODD_RUN = re.compile("[^\x00-\x7f" + "".join(sorted(COMMON_CJK)) + "]+")
_RARE = re.compile("[\x80-\x9f\ue000-\ufaff\u3400-\u9fff]")  # C1 controls, private use, CJK outside level 1


# One CJK character alone inside Latin text ("Caf茅", "Tr猫s", "拢6,000"): how a UTF-8 Latin-1 letter (2 bytes)
# reads as GBK, and GB2312 level 1 holds many of those characters, so they need their context.
_GLUED_CJK = re.compile(r"(?<=[A-Za-z0-9])[\u4e00-\u9fff](?![^\x00-\x7f])"
                        r"|(?<![^\x00-\x7f])[\u4e00-\u9fff](?=[A-Za-z0-9])")
_UTF8_PAIR = re.compile(rb"[\xc2-\xdf][\x80-\xbf]")


def _latin_misread(ch: str) -> float:
    """1 when the common CJK character `ch` is the GBK reading of a 2-byte UTF-8 character, else 0."""
    return 1.0 if ch in COMMON_CJK and _UTF8_PAIR.fullmatch(ch.encode("gbk")) else 0.0


def _gbk_reading_undone(text: str) -> str | None:
    """`text` with its non-ASCII runs re-encoded as GBK and decoded as UTF-8 (what it said before UTF-8 was
    read as GBK), lost bytes as U+FFFD; None when some character has no GBK code (so it was not read as GBK)."""
    try:
        return _NON_ASCII_RUN.sub(lambda m: m.group().encode("gbk").decode("utf-8", errors="replace"), text)
    except UnicodeEncodeError:
        return None


# A text is taken as UTF-8 read as GBK when undoing that reading lowers `implausibility` by at least
# GBK_MIN_GAIN in all and GBK_MIN_GAIN_PER_CHAR per non-ASCII character, a lost byte (U+FFFD) in the re-reading
# costing GBK_LOST_BYTE_COST. Chosen on the dev split of bench/mojibake.py (a grid of 0.25-2 x 0.05-0.4 x
# 0.25-1): every point of the grid changed no clean document there (their re-reading is mostly U+FFFD and rare
# characters, so they lose, not gain); this one sits inside the grid and catches 100% of the zh and 93% of
# the en texts read as GBK with lost bytes.
GBK_MIN_GAIN = 0.5
GBK_MIN_GAIN_PER_CHAR = 0.2
GBK_LOST_BYTE_COST = 0.25
# Share of non-ASCII characters that may be replacement characters before a text counts as damaged beyond
# repair (bytes were lost when it was decoded). One U+FFFD in 100 non-ASCII characters is left alone.
MAX_REPLACEMENT_SHARE = 0.01


# A line of ASCII, CJK ideographs and punctuation, full-width forms, curly quotes, dashes, "…" and "·" only: ftfy's
# encoding fixes undo UTF-8 read through a single-byte code page, and every such misreading starts with a lead byte
# (0xC2-0xF4), which Latin-1/CP1252 show as accented letters, MacRoman and CP437 as letters, symbols and box
# drawing: none is in this set, so ftfy has nothing to fix in such a line.
_NO_SINGLE_BYTE_MOJIBAKE = re.compile(
    r"[\x00-\x7f\u00b7\u2010-\u201f\u2026\u3000-\u303f\u4e00-\u9fff\uff01-\uff5e]*")


def _fix_text_non_ascii_lines(text: str) -> str:
    """``ftfy.fix_text(text, _FTFY)``, calling ftfy only on the lines that could hold its kind of mojibake.

    fix_text already fixes each line ("\n"-terminated segment) on its own, and with our config a line of ASCII
    (or of ASCII and CJK) has nothing to fix, so the result is the same (checked on the CC-like bench pages and
    the shared zh/en text); its per-line overhead on such lines was most of the langid stage's CPU on CC-like
    pages (1.6 of 3.0 s a shard)."""
    parts = text.split("\n")
    last = len(parts) - 1
    out = []
    for i, part in enumerate(parts):
        segment = part + "\n" if i < last else part
        out.append(segment if _NO_SINGLE_BYTE_MOJIBAKE.fullmatch(segment) else ftfy.fix_text(segment, _FTFY))
    return "".join(out)


def fix_encoding(text: str) -> tuple[str, str | None]:
    """Repair mojibake where it is reversible, or name it as a drop reason where it is not.

    Returns (text, None) for clean or repaired text and (text, "mojibake") for damage that cannot be undone.
    Steps: ASCII text is clean; ftfy undoes UTF-8 read as Latin-1 / Windows-1252 / MacRoman (its encoding
    fixes only); then UTF-8 read as GBK, which ftfy does not handle, is detected by comparing the text's
    `implausibility` with that of its re-reading (repaired when the re-reading is complete, dropped when bytes
    were lost); last, text whose non-ASCII characters hold more than `MAX_REPLACEMENT_SHARE` of U+FFFD is
    dropped. (`ftfy.is_bad` as a last check was measured and left out: it flags clean Sanskrit "īśā".)
    """
    if text.isascii():
        return text, None
    fixed = _fix_text_non_ascii_lines(text)
    non_ascii = sum(map(len, _NON_ASCII_RUN.findall(fixed)))
    undone = _gbk_reading_undone(fixed)
    before = implausibility(fixed, GBK_LOST_BYTE_COST) if undone is not None else 0.0
    # the gain cannot exceed `before` (implausibility is never negative): most clean text stops here
    if undone is not None and before >= GBK_MIN_GAIN and before >= GBK_MIN_GAIN_PER_CHAR * non_ascii:
        gain = before - implausibility(undone, GBK_LOST_BYTE_COST)
        if gain >= GBK_MIN_GAIN and gain >= GBK_MIN_GAIN_PER_CHAR * non_ascii:
            if _REPLACEMENT in undone and _REPLACEMENT not in fixed:
                return text, "mojibake"
            fixed = undone
    if fixed.count(_REPLACEMENT) > MAX_REPLACEMENT_SHARE * non_ascii:
        return text, "mojibake"
    return fixed, None
