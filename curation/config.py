"""Frozen Pydantic configs, one per curation stage (field descriptions are the CLI help text).

Defaults are the values a demo run uses; where a number comes from a published recipe the description
says which (Gopher = Rae et al. 2021, "Scaling Language Models", appendix A).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Config):
    """Read raw inputs (WARC/WET/JSONL/Parquet) and extract main text from HTML."""

    min_chars: int = Field(
        50, ge=0, description="Drop documents whose extracted text has fewer characters (reason too_short)."
    )


class LangIdConfig(_Config):
    """Identify each document's language with fastText lid.176 and keep the wanted ones."""

    languages: list[str] = Field(
        default_factory=lambda: ["zh", "en"],
        description="Language codes to keep (lid.176 labels, ISO 639-1). Others go to removed/ as lang:<code>.",
    )
    min_score: dict[str, float] = Field(
        default_factory=lambda: {"zh": 0.5, "en": 0.65},
        description="Minimum lid.176 probability per language (reason low_lang_score). "
        "en 0.65 is the CCNet/Dolma web threshold; zh is lower because mixed zh/latin pages score lower.",
    )
    default_min_score: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum probability for kept languages missing from min_score."
    )


class EnglishFilterConfig(_Config):
    """Gopher-style heuristics for English (and other space-separated) text."""

    min_words: int = Field(50, ge=0, description="Minimum word count (Gopher: 50).")
    max_words: int = Field(100_000, ge=1, description="Maximum word count (Gopher: 100,000).")
    min_mean_word_length: float = Field(3.0, description="Minimum mean word length in characters (Gopher: 3).")
    max_mean_word_length: float = Field(10.0, description="Maximum mean word length in characters (Gopher: 10).")
    max_symbol_word_ratio: float = Field(
        0.1, description="Maximum ratio of '#' and '...'/'…' symbols to words (Gopher: 0.1)."
    )
    max_ellipsis_line_fraction: float = Field(
        0.3, description="Maximum fraction of lines ending with an ellipsis (Gopher: 0.3)."
    )
    min_alpha_word_fraction: float = Field(
        0.8, description="Minimum fraction of words containing an alphabetic character (Gopher: 0.8)."
    )
    min_stop_words: int = Field(
        2, ge=0, description="Minimum number of distinct stop words (the, be, to, of, and, that, have, with) (Gopher: 2)."
    )


class ChineseFilterConfig(_Config):
    """Character-based heuristics for Chinese text (no word segmentation needed)."""

    min_chars: int = Field(100, ge=0, description="Minimum number of non-space characters.")
    max_chars: int = Field(500_000, ge=1, description="Maximum number of non-space characters.")
    min_cjk_fraction: float = Field(
        0.3, description="Minimum share of CJK ideographs among non-space characters (menus, code and spam lists fall below)."
    )
    max_dup_char_ngram_fraction: float = Field(
        0.4,
        description="Maximum share of characters covered by character 10-grams that occur more than once "
        "(a 10-character Chinese n-gram is about 5-6 words). 0.4: ChineseWebText's clean sample peaks at 0.30, "
        "its code dumps reach 0.42.",
    )


class RepetitionFilterConfig(_Config):
    """Repetition rules applied to every language (Gopher's repetition removal)."""

    max_dup_line_fraction: float = Field(0.3, description="Maximum fraction of lines that duplicate an earlier line (Gopher: 0.3).")
    max_dup_line_char_fraction: float = Field(
        0.2, description="Maximum fraction of characters in duplicated lines (Gopher: 0.2)."
    )
    max_dup_word_ngram_fraction: float = Field(
        0.15,
        description="Space-separated languages: maximum share of words covered by word 5-grams that occur "
        "more than once (Gopher's duplicate 5-gram rule, 0.15, counted in words instead of characters).",
    )


class FilterConfig(_Config):
    """Heuristic quality filters; thresholds per language."""

    en: EnglishFilterConfig = Field(default_factory=EnglishFilterConfig, description="English thresholds.")
    zh: ChineseFilterConfig = Field(default_factory=ChineseFilterConfig, description="Chinese thresholds.")
    repetition: RepetitionFilterConfig = Field(
        default_factory=RepetitionFilterConfig, description="Repetition thresholds for every language."
    )


class DedupConfig(_Config):
    """Exact dedup on normalised text, then MinHash-LSH near-dedup."""

    threshold: float = Field(
        0.8, gt=0.0, lt=1.0, description="Target Jaccard similarity of shingle sets for near-duplicates."
    )
    num_perm: int = Field(128, ge=8, description="MinHash permutations (signature length).")
    word_ngram: int = Field(5, ge=1, description="Shingle size in words for space-separated text.")
    char_ngram: int = Field(5, ge=1, description="Shingle size in characters for CJK text (no spaces between words).")
    seed: int = Field(1, description="Seed for the MinHash permutations.")
    bands: int | None = Field(
        None, ge=1, description="LSH bands; default: chosen with rows to minimise false positives + negatives at threshold."
    )
    rows: int | None = Field(None, ge=1, description="LSH rows per band; set together with bands.")

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both dedup.bands and dedup.rows, or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"dedup.bands * dedup.rows must be <= num_perm ({self.num_perm})")
        return self


class QualityConfig(_Config):
    """Add a quality_score column (no drops; thresholds are applied at mix time)."""

    model_path: str | None = Field(
        None, description="Path of a learned quality model (unused for now: the heuristic scorer is used)."
    )


class MixConfig(_Config):
    """Sample, split and shard the final corpus."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"zh": 1.0, "en": 1.0},
        description="Per-language sampling weight: 0.5 keeps a deterministic half, 2 repeats every document twice.",
    )
    default_weight: float = Field(0.0, ge=0.0, description="Weight of languages missing from weights.")
    min_quality: float = Field(
        0.0, ge=0.0, le=1.0, description="Drop documents whose quality_score is below this (reason low_quality)."
    )
    val_fraction: float = Field(
        0.01, ge=0.0, lt=1.0, description="Share of documents (by id hash) held out for validation; at least one."
    )
    seed: int = Field(0, description="Seed for sampling and shuffling.")
    shard_rows: int = Field(100_000, ge=1, description="Rows per output shard.")

    @model_validator(mode="after")
    def _weights(self) -> MixConfig:
        bad = {k: v for k, v in self.weights.items() if v < 0}
        if bad:
            raise ValueError(f"mix.weights must be >= 0, got {bad}")
        return self
