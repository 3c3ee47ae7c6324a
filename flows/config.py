"""The pipeline's resolved configuration: one frozen Pydantic model composed of every stage's own config.

Each stage's config class lives beside its code (``curation.config``, ``tokenizer.config``, ``model.config``);
this module only composes them, holds the presets and applies ``--set key=value`` overrides.

Presets are functions: ``demo()`` is what ``make run`` uses (the bundled data under ``demo/``), ``tiny()`` is
the same DAG shrunk for tests. Overrides are dotted keys (``pretrain.steps=50``); an unknown key fails with the
list of valid keys at that level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curation.config import DedupConfig, FilterConfig, IngestConfig, LangIdConfig, MixConfig, QualityConfig
from curation.config import QualityModelConfig
from curation.crawl import CrawlConfig
from evals.config import EvalConfig
from flows.executor import ExecutionConfig
from model.config import PretrainConfig, SFTConfig
from tokenizer.config import TokenizerConfig, TokensConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "demo"


class UserError(Exception):
    """A mistake the user can fix (bad path, unknown key, unknown stage): the CLI prints it on one line."""


class PipelineConfig(BaseModel):
    """Everything that decides what the DAG computes. Goes (per stage section) into the artifact ids; the
    ``execution`` section says how it runs and never does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[str] = Field(description="Raw inputs: WARC/WET (.warc, .warc.gz), JSONL or Parquet text files.")
    sft_data: list[str] = Field(description="Instruction data for SFT: Alpaca / ShareGPT / BELLE JSON files.")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    quality_model: QualityModelConfig = Field(default_factory=QualityModelConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Eval of each pretrain and SFT model.")
    crawl: CrawlConfig = Field(default_factory=CrawlConfig, description="Optional crawl stage (runs only with seeds).")
    # How stages run (executor, workers, cluster settings): not a stage section, so never part of an id.
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)


def _demo_files(sub: str, pattern: str) -> list[str]:
    return sorted(str(p) for p in (DEMO_DIR / sub).glob(pattern))


def demo() -> dict[str, Any]:
    """The bundled demo: 3 real WARCs (Common Crawl + wget), zh Wikipedia and en C4 text, zh+en SFT data."""
    return {
        "inputs": _demo_files("warc", "*.warc.gz") + _demo_files("text", "*.jsonl"),
        "sft_data": _demo_files("sft", "*.json"),
        # No quality_model.positives: the shipped plain-statistics scorer, whose scores mean the same in English
        # and Chinese (one mix threshold serves both; the n-gram classifier trained on reference text vs the
        # demo's crawl gave English 0.03-0.38 and Chinese 0.8-0.9). The tiny preset still trains that classifier.
        # 5% validation (~30 docs) so val loss / bits-per-byte mean something at demo scale.
        "mix": {"val_fraction": 0.05},
        # 50 items per task (12 tasks) keep the two eval nodes to well under a minute on 2 cores
        "eval": {"max_items": 50},
    }


def tiny() -> dict[str, Any]:
    """The demo DAG shrunk to seconds per stage, for tests: one WARC + the zh text, a few training steps."""
    return {
        "inputs": [str(DEMO_DIR / "warc" / "cc-main-2020-34-sample.warc.gz"),
                   str(DEMO_DIR / "text" / "zh_wiki_cmrc2018.jsonl"),
                   str(DEMO_DIR / "text" / "en_c4.jsonl")],
        "sft_data": [str(DEMO_DIR / "sft" / "identity_zh_en.json")],
        "quality_model": {"positives": [str(DEMO_DIR / "text" / "zh_wiki_cmrc2018.jsonl"),
                                        str(DEMO_DIR / "sft" / "en_instructions_rasbt.json")]},
        "mix": {"val_fraction": 0.05},
        "pretrain": {"depth": 1, "steps": 20, "batch_size": 4, "seq_len": 64, "eval_every": 10,
                     "eval_batches": 1, "warmup_steps": 2},
        "sft": {"steps": 5, "batch_size": 4, "max_len": 64, "warmup_steps": 1, "eval_batches": 1},
        "eval": {"max_items": 10},
    }


def ablate() -> dict[str, Any]:
    """The demo data for `lmpipe ablate`: proxy models of 200 steps (410k tokens: about one epoch of the demo's
    full mix), so two variants x two seeds (4 models, 4 evals) fit in a few minutes on 2 cores."""
    data = demo()
    data["pretrain"] = {"steps": 200, "warmup_steps": 20, "eval_every": 100}
    return data


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {"demo": demo, "tiny": tiny, "ablate": ablate}


def parse_value(raw: str) -> Any:
    """``--set`` values: JSON when it parses (numbers, lists, true/false), else the plain string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    return [prefix + k for k in model.model_fields]


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b] = value`` for ``a.b``, checking each key against the config classes."""
    parts = dotted.split(".")
    model: type[BaseModel] = PipelineConfig
    node = data
    for i, key in enumerate(parts):
        fields = model.model_fields
        if key not in fields:
            where = ".".join(parts[:i]) or "the top level"
            raise UserError(f"unknown config key '{dotted}'; valid keys at {where}: "
                            + ", ".join(_valid_keys(model, ".".join(parts[:i]) + "." if i else "")))
        if i == len(parts) - 1:
            node[key] = value
            return
        ann = fields[key].annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            raise UserError(f"config key '{'.'.join(parts[:i + 1])}' has no sub-keys; use --set "
                            f"{'.'.join(parts[:i + 1])}=VALUE")
        node = node.setdefault(key, {})
        model = ann


def resolve_config(preset: str = "demo", overrides: dict[str, Any] | None = None,
                   inputs: list[str] | None = None) -> PipelineConfig:
    """Build and validate the config: preset, then ``--set`` overrides, then ``--input`` paths."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    data = PRESETS[preset]()
    for k, v in (overrides or {}).items():
        apply_override(data, k, parse_value(v) if isinstance(v, str) else v)
    if inputs:
        data["inputs"] = expand_local_inputs(list(inputs))
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"invalid config value for '{loc}': {err['msg']}; "
                        "see `lmpipe config` for the defaults") from None
    crawling = bool(cfg.crawl.seeds or cfg.crawl.seeds_file)
    if cfg.inputs or not crawling:  # a crawl may be the only raw input
        check_paths(cfg.inputs, "input")
    if cfg.crawl.seeds_file:
        check_paths([cfg.crawl.seeds_file], "crawl seeds")
    check_paths(cfg.sft_data, "SFT data")
    if cfg.quality_model.positives:
        check_paths(cfg.quality_model.positives, "quality_model.positives")
    if cfg.quality_model.labels:
        check_paths([cfg.quality_model.labels], "quality_model.labels")
    return cfg


# Suffixes of the raw files a directory input stands for (what curation.readers reads).
RAW_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson",
                ".parquet")
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")  # files still being written
NOT_DOCUMENTS = ("crawl-log.jsonl",)  # `lmpipe crawl --out DIR` writes its log beside the WARC files


def raw_files_in(directory: str) -> list[str]:
    """The raw input files of a directory, sorted, not recursive: known suffixes only; hidden files, files still
    being written (``*.part``, ``*.tmp``…) and the crawler's log are left out."""
    out: list[str] = []
    for name in sorted(os.listdir(directory)):
        low, full = name.lower(), os.path.join(directory, name)
        if (not name.startswith(".") and low.endswith(RAW_SUFFIXES) and not low.endswith(PARTIAL_SUFFIXES)
                and name not in NOT_DOCUMENTS and os.path.isfile(full)):
            out.append(os.path.abspath(full))
    return out


def expand_local_inputs(inputs: list[str]) -> list[str]:
    """``--input`` may name files, directories (their non-hidden files) or globs (``crawl/*.warc.gz``): the
    artifact ids are computed over the files they stand for, in sorted order, so the same files give the same
    ids however they were named (a directory: see ``raw_files_in``). fsspec URLs are kept as given; a glob or
    directory that matches nothing is an error (a typo must not become an empty corpus)."""
    import glob

    files: list[str] = []
    for item in inputs:
        if "://" in item or not (glob.has_magic(item) or os.path.isdir(item)):
            files.append(item)  # a plain path: check_paths reports it when it is missing
            continue
        if glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            found = raw_files_in(item)
        if not found and glob.has_magic(item):
            raise UserError(f"input {item} matches no file; check the pattern")
        if not found:
            raise UserError(f"input directory {item} holds no raw input file ({', '.join(RAW_SUFFIXES)}); "
                            "check the directory")
        files.extend(found)
    return files


def check_paths(paths: list[str], what: str) -> None:
    """Fail early, before any stage runs, on a missing or unreadable input path."""
    if not paths:
        raise UserError(f"no {what} files given; pass them with --input or in the preset")
    for p in paths:
        if "://" in p:  # fsspec URL: checked by the reader
            continue
        if not os.path.exists(p):
            raise UserError(f"{what} file not found: {p}; "
                            "check the path (relative paths are from the current directory)")
        if not os.access(p, os.R_OK) or os.path.isdir(p):
            raise UserError(f"{what} path is not a readable file: {p}; fix its permissions or pass a file")
