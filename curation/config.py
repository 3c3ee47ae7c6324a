"""Frozen Pydantic configs, one per curation stage (field descriptions are the CLI help text).

Defaults are the values a demo run uses; where a number comes from a published recipe the description
says which (Gopher = Rae et al. 2021, "Scaling Language Models", appendix A).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Config):
    """Read raw inputs (WARC/WET/JSONL/Parquet) and extract main text from HTML."""

    min_chars: int = Field(
        50, ge=0, description="Drop documents whose extracted text has fewer characters (reason too_short)."
    )
    fallback: Literal["trafilatura", "relaxed", "none"] = Field(
        "trafilatura",
        description="When our main-content scorer finds < 250 characters: 'trafilatura' (best F1 on those pages, "
        "0.917 on the 15 bench pages that hit it, ~22 ms a page), 'relaxed' (a second pass of our scorer keeping "
        "forms/nav/hidden blocks: 0.870, ~1.7x the curation half's docs/CPU-s) or 'none' (drop as no_main_text).",
    )
    fallback_min_page_chars: int = Field(
        2500,
        ge=0,
        description="Send an unsure page to the fallback only when the whole page holds at least this many "
        "characters of text (menus, forms, hidden blocks included): below it the page is a notice, login form or "
        "link listing and trafilatura returns its menus (11 -> 1 of the curation bench's 56 pages, half the "
        "ingest CPU, same mix). 0: every unsure page goes to the fallback, as before.",
    )


class LangIdConfig(_Config):
    """Identify each document's language with fastText lid.176 and keep the wanted ones."""

    languages: list[str] = Field(
        default_factory=lambda: ["zh", "en"],
        description="Language codes to keep (lid.176 labels, ISO 639-1). Others go to removed/ as lang:<code>.",
    )
    min_score: dict[str, float] = Field(
        default_factory=lambda: {"zh": 0.5, "en": 0.75},
        description="Minimum `curation.langid.identify` score per language (reason low_lang_score). zh: the Han "
        "share of letters (0.5 = at least as many Han characters as other-script words). en: the share of words in "
        "the English wordlist (alone when >= 0.9 of >= 8 words), else 0.3 x fastText probability + 0.7 x that "
        "share; 0.75 keeps 0.96 of lingua's English sentences and rejects nearly all Latin-script sentences "
        "lid.176 calls English (bench/langid.py). Texts of <= 40 characters: the short-text model's English "
        "probability (curation.langid, fitted by bench/langid.py --fit-short).",
    )
    default_min_score: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum probability for kept languages missing from min_score."
    )


class EnglishFilterConfig(_Config):
    """English rules: Gopher quality, C4 (without its terminal-punctuation line rule) and FineWeb."""

    min_words: int = Field(50, ge=0, description="Minimum word count (Gopher: 50).")
    max_words: int = Field(100_000, ge=1, description="Maximum word count (Gopher: 100,000).")
    min_mean_word_length: float = Field(3.0, description="Minimum mean word length in characters (Gopher: 3).")
    max_mean_word_length: float = Field(10.0, description="Maximum mean word length in characters (Gopher: 10).")
    max_symbol_word_ratio: float = Field(
        0.1, description="Maximum ratio of '#' and '...'/'…' symbols to words (Gopher: 0.1)."
    )
    max_bullet_line_fraction: float = Field(
        0.9, description="Maximum fraction of lines starting with a bullet (Gopher: 0.9)."
    )
    max_ellipsis_line_fraction: float = Field(
        0.3, description="Maximum fraction of lines ending with an ellipsis (Gopher: 0.3)."
    )
    min_alpha_word_fraction: float = Field(
        0.8, description="Minimum fraction of words containing an alphabetic character (Gopher: 0.8)."
    )
    min_stop_words: int = Field(
        2, ge=0,
        description="Minimum number of distinct stop words (the, be, to, of, and, that, have, with) (Gopher: 2).",
    )
    c4_lorem_ipsum: bool = Field(True, description="Drop documents containing 'lorem ipsum' (C4).")
    c4_curly_bracket: bool = Field(True, description="Drop documents containing '{' (C4: code and templates).")
    min_line_punct_fraction: float = Field(
        0.4,
        description="Minimum fraction of lines ending with terminal punctuation or holding a sentence end ('. ') "
        "inside. FineWeb uses 0.12 on line ends only; 0.4 (with inner sentence ends) removes 3x more DCLM "
        "low-quality than high-quality pages and keeps 96% of clean Wikipedia/WikiText (bench/filters.py).",
    )
    max_short_line_fraction: float = Field(
        0.6,
        description="Maximum fraction of lines of <= 30 characters "
        "(FineWeb: 0.67; 0.6 calibrated with the line rule above).",
    )
    max_newline_word_ratio: float = Field(
        0.3, description="Maximum ratio of newlines to words, i.e. list-like pages (FineWeb: 0.3)."
    )


class ChineseFilterConfig(_Config):
    """Character-based rules for Chinese (no word segmentation), after FineWeb-2's cmn_Hani choices."""

    min_chars: int = Field(100, ge=0, description="Minimum number of non-space characters.")
    max_chars: int = Field(500_000, ge=1, description="Maximum number of non-space characters.")
    min_cjk_fraction: float = Field(
        0.5,
        description="Minimum share of CJK ideographs among CJK ideographs + other-script words (one Han character "
        "weighs as one word); menus and Latin link lists fall below, pages with code or English terms stay above.",
    )
    min_line_punct_fraction: float = Field(
        0.12,
        description="Minimum fraction of lines ending with terminal punctuation, Chinese (。！？；…」』”）) or Latin, "
        "or holding a sentence end (。！？) inside (FineWeb's 0.12; lists of links and titles have neither).",
    )
    max_short_line_fraction: float = Field(
        0.67, description="Maximum fraction of lines of <= 10 characters (FineWeb's 0.67 at 30 Latin characters)."
    )
    max_top_char_ngram_fraction: float = Field(
        0.2,
        description="Maximum share of characters covered by the most frequent character 4-gram (Gopher's top "
        "n-gram rule in characters; clean Chinese text stays below 0.05).",
    )
    max_dup_char_ngram_fraction: float = Field(
        0.4,
        description="Maximum share of characters covered by character 10-grams that occur more than once "
        "(a 10-character Chinese n-gram is about 5-6 words), counted over the non-ASCII characters. 0.4: "
        "ChineseWebText's clean sample peaks at 0.30, its code dumps reach 0.42.",
    )
    max_boilerplate_line_fraction: float = Field(
        0.3,
        description="Maximum fraction of lines holding a site-boilerplate phrase (版权所有, 免责声明, 设为首页, "
        "ICP备, …; `curation.filters.ZH_BOILERPLATE`).",
    )


class RepetitionFilterConfig(_Config):
    """Repetition rules applied to every language (Gopher's repetition removal)."""

    max_dup_line_fraction: float = Field(
        0.3, description="Maximum fraction of lines that duplicate an earlier line (Gopher: 0.3)."
    )
    max_dup_line_char_fraction: float = Field(
        0.2, description="Maximum fraction of characters in duplicated lines (Gopher: 0.2)."
    )
    max_dup_paragraph_fraction: float = Field(
        0.3,
        description="Maximum fraction of paragraphs (split on blank lines) that repeat an earlier one (Gopher: 0.3).",
    )
    max_dup_word_ngram_fraction: float = Field(
        0.15,
        description="Space-separated languages: maximum share of words covered by word 5-grams that occur "
        "more than once (Gopher's duplicate 5-gram rule, 0.15, counted in words instead of characters).",
    )
    max_top_word_ngram_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16},
        description="Space-separated languages: n -> maximum share of characters covered by the most frequent "
        "word n-gram (Gopher: 2: 0.20, 3: 0.18, 4: 0.16).",
    )


class PiiConfig(_Config):
    """PII replacement inside the filter stage (`curation.pii`); counts go to the stage stats under `pii`."""

    enabled: bool = Field(True, description="Replace PII in every document the filter stage writes.")
    kinds: list[str] = Field(
        default_factory=lambda: ["email", "cn_id", "ipv4", "ipv6", "phone"],
        description="Which kinds to replace (email, cn_id, ipv4, ipv6, phone), each by its placeholder.",
    )


class FilterConfig(_Config):
    """Heuristic quality filters (thresholds per language) and PII replacement."""

    en: EnglishFilterConfig = Field(default_factory=EnglishFilterConfig, description="English thresholds.")
    zh: ChineseFilterConfig = Field(default_factory=ChineseFilterConfig, description="Chinese thresholds.")
    repetition: RepetitionFilterConfig = Field(
        default_factory=RepetitionFilterConfig, description="Repetition thresholds for every language."
    )
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII replacement.")
    decontam: bool = Field(
        True, description="Drop documents that contain text of a shipped eval set (evals.decontam): "
        "drop reason decontam:<set>.",
    )
    decontam_extra: list[str] = Field(
        default_factory=list, description="More eval sets to keep out of the corpus, [NAME=]PATH as in "
        "eval.extra_tasks (JSONL, or C-Eval/CMMLU-style CSV).",
    )
    spam: bool = Field(
        True, description="Drop Chinese web spam (gambling, porn, SEO link farms, game private servers/cheats, fake "
        "certificates) found by the weighted lexicon of curation.spam: drop reason spam:<category>.",
    )
    spam_min_score: float = Field(
        5.0, ge=0.0, description="Spam: minimum lexicon score of the leading category (title terms count twice; "
        "the middle of the dev margin: clean text up to 4, spam from 6; bench/spam.py).",
    )
    spam_min_density: float = Field(
        1.0, ge=0.0, description="Spam: minimum lexicon score per 1,000 characters (length floored at 1,000), so "
        "that a long article that names a gambling or porn term a few times stays.",
    )


class DedupConfig(_Config):
    """Exact dedup on normalised text, then MinHash-LSH near-dedup with exact-Jaccard verification.

    Default bands x rows make a pair exactly at the threshold an LSH candidate with probability >= 0.99;
    every candidate is then verified by the exact Jaccard of its shingle sets. S-curve, P(candidate | J),
    at 128 permutations: threshold 0.8 -> 21 bands x 6 rows: J 0.5: 0.28, 0.6: 0.70, 0.7: 0.96,
    0.8: 0.998, 0.9: 1.0 (datasketch's FP+FN optimum, 9 x 13, gives 0.40 at 0.8). Threshold 0.5 -> 42 x 3:
    J 0.2: 0.59, 0.5: 0.996. Shingles: char n-grams for CJK text (whitespace and punctuation removed,
    like the ground-truth pair lists in shared/data/near_dup), word n-grams otherwise.
    """

    threshold: float = Field(
        0.8, gt=0.0, lt=1.0, description="Target Jaccard similarity of shingle sets for near-duplicates."
    )
    num_perm: int = Field(128, ge=8, description="MinHash permutations (signature length).")
    word_ngram: int = Field(5, ge=1, description="Shingle size in words for space-separated text.")
    char_ngram: int = Field(5, ge=1, description="Shingle size in characters for CJK text (no spaces between words).")
    seed: int = Field(1, description="Seed for the MinHash permutations.")
    bands: int | None = Field(
        None, ge=1, description="LSH bands; default: chosen with rows so that P(candidate | J = threshold) >= 0.99."
    )
    rows: int | None = Field(None, ge=1, description="LSH rows per band; set together with bands.")
    index_dir: str | None = Field(
        None,
        description="Persistent dedup index directory: dedup each batch against the documents kept by earlier "
        "runs too (duplicate_of = the earlier id), then add the batch's kept documents to it.",
    )

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both dedup.bands and dedup.rows, or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"dedup.bands * dedup.rows must be <= num_perm ({self.num_perm})")
        return self


class QualityModelConfig(_Config):
    """Train the learned quality scorer (curation.quality): reference text vs raw crawl, + optional labels."""

    positives: list[str] = Field(
        default_factory=list,
        description="Curated reference files (high quality: Wikipedia, textbooks, instruction data; JSONL/JSON/"
        "Parquet/.txt). Empty: the artifact is a copy of the shipped default model (curation/models/).",
    )
    labels: str | None = Field(
        None, description="JSONL of {text, label: 0|1} (e.g. DCLM human labels): fit the combiner on them."
    )
    max_negatives: int = Field(
        5000, ge=1, description="Raw-crawl negatives sampled (seeded) from the ingest output; the ingest documents "
        "from a file named in positives are never negatives."
    )
    combiner_l2: float = Field(0.3, gt=0.0, description="L2 penalty of the trained n-gram model's combiner (best "
                               "of 0.001-1 in 5-fold CV); the shipped plain-statistics model is not affected.")
    seed: int = Field(0, description="Seed for sampling and cross-fitting folds.")


class QualityConfig(_Config):
    """Add a quality_score column (no drops; thresholds are applied at mix time)."""

    model_path: str | None = Field(
        None,
        description="None: score with the quality_model stage's artifact (the shipped model when run_quality is "
        "called without one); 'default': the shipped curation/models/quality_default.npz; else a model file.",
    )


class MixConfig(_Config):
    """Sample, split and shard the final corpus (the order of operations is in `curation.mix`)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"zh": 1.0, "en": 1.0},
        description="Per-language sampling weight: 0.5 keeps a deterministic half, 2 repeats every document twice.",
    )
    default_weight: float = Field(0.0, ge=0.0, description="Weight of languages missing from weights.")
    source_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Per-source weight, multiplied with the language weight. Keys: a `source` value (the raw "
        "input's file name) or an fnmatch pattern (`*.warc.gz`); sources matching no key weigh 1. A key that "
        "matches no source of the input is an error.",
    )
    min_quality: float = Field(
        0.0, ge=0.0, le=1.0, description="Drop documents whose quality_score is below this (reason low_quality)."
    )
    min_quality_lang: dict[str, float] = Field(
        default_factory=dict,
        description="Per-language quality thresholds replacing min_quality for that language, e.g. {\"en\": 0.5} "
        "(with the shipped scorer one min_quality means the same in English and Chinese).",
    )
    top_fraction: float = Field(
        1.0, gt=0.0, le=1.0,
        description="Keep only this best share of each language by quality_score, after the thresholds "
        "(0.1 = top 10%; reason below_top_fraction).",
    )
    rehydrate: dict[int, float] = Field(
        default_factory=dict,
        description="Rehydration by dedup cluster size (FineWeb-2/Zyda-2 style): {min cluster size: weight "
        "multiplier}; the largest key <= dup_cluster_size applies, e.g. {\"1\": 1, \"2\": 2, \"10\": 3, "
        "\"1000\": 1} repeats documents that had duplicates but not boilerplate from huge clusters. {} = off.",
    )
    token_budget: int | None = Field(
        None, ge=1,
        description="Up/down-sample every weight by one factor so that the train split holds about this many "
        "tokens (estimated from characters with chars_per_token). None = weights as given.",
    )
    chars_per_token: dict[str, float] = Field(
        default_factory=lambda: {"en": 4.0, "zh": 1.4},
        description="Characters per token used to estimate tokens per language (other languages: 3). en 4.0 and "
        "zh 1.4 are typical of 32k-150k BPE vocabularies; the demo's 8k tokenizer measures en 2.87, zh 1.07 "
        "(tokenizer stats languages.*.chars_per_token): set yours for an exact budget.",
    )
    val_fraction: float = Field(
        0.01, ge=0.0, lt=1.0, description="Share of documents (by id hash) held out for validation; at least one."
    )
    seed: int = Field(0, description="Seed for sampling and shuffling.")
    shard_rows: int = Field(100_000, ge=1, description="Rows per output shard.")

    @model_validator(mode="after")
    def _weights(self) -> MixConfig:
        for name in ("weights", "source_weights", "rehydrate", "min_quality_lang"):
            bad = {k: v for k, v in getattr(self, name).items() if v < 0}
            if bad:
                raise ValueError(f"mix.{name} must be >= 0, got {bad}")
        if self.weights and not any(self.weights.values()) and self.default_weight == 0:
            raise ValueError(f"mix.weights sum to zero ({self.weights}, default_weight 0): "
                             "every document would be dropped")
        if self.source_weights and not any(self.source_weights.values()) and "*" in self.source_weights:
            raise ValueError(f"mix.source_weights sum to zero ({self.source_weights}): every document would be dropped")
        over = {k: v for k, v in self.min_quality_lang.items() if v > 1}
        if over:
            raise ValueError(f"mix.min_quality_lang thresholds must be <= 1 (quality_score is in [0, 1]), got {over}")
        if any(k < 1 for k in self.rehydrate):
            raise ValueError(f"mix.rehydrate keys are cluster sizes >= 1, got {sorted(self.rehydrate)}")
        if any(v <= 0 for v in self.chars_per_token.values()):
            raise ValueError(f"mix.chars_per_token values must be > 0, got {self.chars_per_token}")
        return self
