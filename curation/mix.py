"""Mix the curated documents into train/val Parquet shards: the last curation stage.

What it is for: the `mix` stage (`curation.stages.run_mix`) turns the scored, deduplicated documents into the
corpus the tokenizer and the model read. Users change its weights and thresholds often, so it works from the
`quality` artifact alone and re-runs in about a second on the demo (bench/RESULTS.md).

Order of operations (every decision is a deterministic function of the document id and the seed, so the same
inputs and config give byte-identical shards whatever the input order):

1. **Check the config against the input before any work** (`check_input`): reads only the small columns
   `source`, `lang`, `quality_score`. A `source_weights` key that matches no source, weights that are zero
   for every document, or a threshold that keeps no document raise a `ValueError` naming the problem.
2. **Quality**: drop rows below the threshold of their language (`min_quality_lang`, else `min_quality`;
   reason low_quality), then keep the best `top_fraction` of each language by quality_score (reason
   below_top_fraction; ties broken by id hash).
3. **Weight** of a row = language weight x source weight x rehydration multiplier (by `dup_cluster_size`,
   FineWeb-2/Zyda-2 style: documents whose text existed in several copies are evidence of value; the largest
   `rehydrate` key <= the cluster size applies).
4. **Token budget**: with `token_budget`, every weight is multiplied by one factor so that the expected train
   tokens equal the budget (> 1 up-samples, < 1 down-samples). Tokens are *estimated* as
   characters / `chars_per_token[lang]` (default en 4.0, zh 1.4, others 3.0): characters, not bytes, because
   a Han character is 3 UTF-8 bytes but about 0.7 tokens, so bytes would overstate Chinese 2x.
5. **Copies**: weight w gives floor(w) copies plus one more with probability frac(w), decided by
   hash(seed, id) (0.5 keeps a deterministic half, 2 repeats every document twice; reasons weight_zero,
   sampled_out). Validation documents get at most one copy: repeats would only bias the val loss.
6. **Split**: a document is in val when hash(id) / 2^64 < val_fraction (seed-independent, so changing the seed
   or a weight never moves a document between train and val); if that leaves val empty, the document with the
   smallest hash goes there.
7. **Shuffle**: rows are ordered by hash(seed, id, copy number); shards of `shard_rows` rows, row groups of
   <= 5,000 rows, zstd (docs/CONTRACTS.md).

Stats: docs and UTF-8 bytes per source and per language before and after (after counts repeats), repeats,
drops per reason, estimated tokens per language, the budget factor.

Limitation: the eligible rows are held in memory (an Arrow table) to shuffle them; an external, bucketed
shuffle for corpora larger than memory is a later issue.

    .venv/bin/python -c "from curation.mix import mix; from curation.config import MixConfig; \\
        print(mix(['lmpipe-data/quality/<id>'], __import__('pathlib').Path('/tmp/mix'), MixConfig()))"
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curation.config import MixConfig
from curation.documents import ROW_GROUP_ROWS, document_schema, resolve_inputs

_TWO_64 = float(1 << 64)
# Characters per token for languages missing from MixConfig.chars_per_token (between en 4 and zh 1.4).
DEFAULT_CHARS_PER_TOKEN = 3.0
# The columns the pre-work check reads: tiny next to `text`.
_CHECK_COLUMNS = ("source", "lang", "quality_score", "dup_cluster_size")


def _hash(*parts: object) -> int:
    return xxhash.xxh64_intdigest("\x1f".join(str(p) for p in parts))


def _uniform(*parts: object) -> float:
    return _hash(*parts) / _TWO_64


# ---------------------------------------------------------------------------------------------- checks


def source_weight_of(source: str, cfg: MixConfig) -> float:
    """The source weight of one `source` value: an exact key first, then the first matching fnmatch pattern."""
    if source in cfg.source_weights:
        return cfg.source_weights[source]
    for pattern, weight in cfg.source_weights.items():
        if fnmatch.fnmatchcase(source, pattern):
            return weight
    return 1.0


def check_sources(cfg: MixConfig, sources: Iterable[str]) -> None:
    """Every `source_weights` key must match at least one source; raises ValueError naming the bad key."""
    known = sorted(set(sources))
    for key in cfg.source_weights:
        if not any(s == key or fnmatch.fnmatchcase(s, key) for s in known):
            raise ValueError(f"mix.source_weights names source '{key}', which no input document has (a source is "
                             f"a raw input's file name; present: {', '.join(known) or '(none)'})")


def _threshold(cfg: MixConfig, lang: str) -> float:
    return cfg.min_quality_lang.get(lang, cfg.min_quality)


def _needs_scores(cfg: MixConfig) -> bool:
    return cfg.min_quality > 0 or any(v > 0 for v in cfg.min_quality_lang.values()) or cfg.top_fraction < 1


def _read_columns(files: Sequence[Path], wanted: Iterable[str]) -> pa.Table:
    """The `wanted` columns of every file, concatenated; columns a file lacks come back as nulls."""
    tables = []
    for path in files:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in wanted if c in present])
        tables.append(table)
    return _concat(tables)


def check_input(files: Sequence[Path], cfg: MixConfig) -> None:
    """Check the config against the input's small columns, before any document is read (see module doc)."""
    meta = _read_columns(files, _CHECK_COLUMNS)
    n = meta.num_rows
    if n == 0:
        return  # nothing to mix: an empty corpus gives empty shards, not an error
    sources = [s or "" for s in meta.column("source").to_pylist()] if "source" in meta.column_names else [""] * n
    langs = [x or "" for x in meta.column("lang").to_pylist()] if "lang" in meta.column_names else [""] * n
    check_sources(cfg, sources)
    source_w = {s: source_weight_of(s, cfg) for s in set(sources)}
    weight = np.array([cfg.weights.get(lang, cfg.default_weight) * source_w[s] for s, lang in zip(sources, langs)])
    if not (weight > 0).any():
        present = Counter(zip(langs, sources))
        raise ValueError(
            f"mix weights sum to zero over the input's {n} documents (languages {dict(Counter(langs))}; "
            f"mix.weights {cfg.weights}, default_weight {cfg.default_weight}, source_weights {cfg.source_weights}); "
            f"give at least one present language/source a weight > 0 ({len(present)} language/source pairs)")
    for lang in cfg.min_quality_lang:
        if lang not in langs:
            raise ValueError(f"mix.min_quality_lang names language '{lang}', which has no document in the input "
                             f"(languages: {', '.join(sorted(set(langs)))})")
    if not _needs_scores(cfg):
        return
    if "quality_score" not in meta.column_names:
        raise ValueError("mix.min_quality / min_quality_lang / top_fraction need a quality_score column: "
                         "mix the quality stage's output")
    scores = np.nan_to_num(meta.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64), nan=-1.0)
    lang_arr = np.array(langs, dtype=object)
    kept_any = False
    for lang in sorted(set(langs)):
        rows = (lang_arr == lang) & (weight > 0)
        if not rows.any():
            continue
        limit = _threshold(cfg, lang)
        passing = int((scores[rows] >= limit).sum())
        if passing == 0 and (lang in cfg.min_quality_lang or cfg.min_quality > 0):
            key = f"mix.min_quality_lang.{lang}" if lang in cfg.min_quality_lang else "mix.min_quality"
            raise ValueError(f"{key}={limit} keeps no '{lang}' document (highest '{lang}' quality_score: "
                             f"{scores[rows].max():.4f}); lower the threshold or set the language's weight to 0")
        kept_any = kept_any or passing > 0
    if not kept_any:
        raise ValueError("the quality thresholds keep no document with a weight > 0")


# ------------------------------------------------------------------------------------------------- mix


def mix(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig) -> dict[str, Any]:
    """Write `train-NNNNN.parquet` and `val-NNNNN.parquet` into `out_dir`; return stats (see module doc)."""
    files = resolve_inputs(inputs)
    check_input(files, cfg)  # raises before the documents are read
    table = _concat([pq.read_table(path) for path in files])
    n = table.num_rows
    ids = table.column("id").to_pylist()
    langs = [x or "" for x in table.column("lang").to_pylist()]
    sources = [x or "" for x in table.column("source").to_pylist()]
    chars = pc.utf8_length(table.column("text").fill_null("")).to_numpy(zero_copy_only=False).astype(np.int64)
    nbytes = pc.binary_length(table.column("text").fill_null("")).to_numpy(zero_copy_only=False).astype(np.int64)
    dropped: Counter[str] = Counter()
    keep = np.ones(n, dtype=bool)
    reason = np.array([""] * n, dtype=object)

    # 2. quality: per-language threshold, then the best top_fraction of each language.
    if _needs_scores(cfg):
        scores = np.nan_to_num(table.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64),
                               nan=-1.0)
        limits = np.array([_threshold(cfg, lang) for lang in langs])
        low = scores < limits
        keep &= ~low
        reason[low] = "low_quality"
        if cfg.top_fraction < 1:
            lang_arr = np.array(langs, dtype=object)
            for lang in set(langs):
                rows = np.flatnonzero(keep & (lang_arr == lang))
                quota = math.ceil(len(rows) * cfg.top_fraction)
                # best first; equal scores in id-hash order, so the cut is deterministic
                ranked = sorted(rows, key=lambda i: (-scores[i], _hash("top", ids[i])))
                for i in ranked[quota:]:
                    keep[i] = False
                    reason[i] = "below_top_fraction"

    # 3. weights: language x source x rehydration.
    source_w = {s: source_weight_of(s, cfg) for s in set(sources)}
    weight = np.array([cfg.weights.get(lang, cfg.default_weight) * source_w[s] for s, lang in zip(sources, langs)])
    if cfg.rehydrate and "dup_cluster_size" in table.column_names:
        sizes = table.column("dup_cluster_size").fill_null(1).to_numpy(zero_copy_only=False)
        weight = weight * np.array([_rehydration(int(s), cfg.rehydrate) for s in sizes])
    cpt = np.array([cfg.chars_per_token.get(lang, DEFAULT_CHARS_PER_TOKEN) for lang in langs])
    tokens = chars / cpt

    # 6. split (before sampling, so weights never move a document between train and val).
    split_hash = np.array([_hash("split", doc_id) for doc_id in ids], dtype=np.uint64)
    is_val = split_hash.astype(np.float64) / _TWO_64 < cfg.val_fraction
    eligible = keep & (weight > 0)
    forced = -1  # the document moved to val because the hash gave val none; it is kept whatever its weight
    if eligible.any() and not (is_val & eligible).any():
        candidates = np.flatnonzero(eligible)
        forced = int(candidates[int(np.argmin(split_hash[candidates]))])
        is_val[forced] = True

    # 4. token budget: one factor for every weight.
    factor = 1.0
    if cfg.token_budget is not None:
        train_rows = eligible & ~is_val
        expected = float((weight[train_rows] * tokens[train_rows]).sum())
        factor = cfg.token_budget / expected if expected > 0 else 1.0

    # 5. copies.
    copies = np.zeros(n, dtype=np.int64)
    for i in np.flatnonzero(keep):
        w = weight[i] * factor
        c = math.floor(w) + (_uniform("sample", cfg.seed, ids[i]) < w - math.floor(w))
        if is_val[i]:
            c = 1 if i == forced else min(c, 1)
        copies[i] = c
        if c == 0:
            reason[i] = "weight_zero" if weight[i] == 0 else "sampled_out"
    for r in reason[reason != ""]:
        dropped[r] += 1

    # 7. shuffle and write.
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"docs_in": n, "dropped": dict(sorted(dropped.items()))}
    for split, in_split in (("train", ~is_val), ("val", is_val)):
        keyed = sorted((_hash("order", cfg.seed, ids[i], c), int(i))
                       for i in np.flatnonzero(in_split & (copies > 0)) for c in range(copies[i]))
        split_table = table.take(pa.array([i for _, i in keyed], type=pa.int64()))
        per_lang = Counter(split_table.column("lang").to_pylist())
        stats[split] = {
            "rows": split_table.num_rows,
            "docs": int((in_split & (copies > 0)).sum()),
            "files": _write_shards(split_table, out_dir, split, cfg.shard_rows),
            "langs": dict(sorted(per_lang.items(), key=lambda kv: str(kv[0]))),
            "tokens_est": int(round(float((tokens * copies)[in_split].sum()))),
        }
    written = copies > 0
    stats["docs_out"] = int(written.sum())
    stats["rows_out"] = int(copies.sum())
    stats["repeats"] = int(copies.sum() - written.sum())
    stats["budget"] = {"token_budget": cfg.token_budget, "factor": round(factor, 6),
                       "train_tokens_est": stats["train"]["tokens_est"]}
    stats["by_source"] = _breakdown(sources, nbytes, copies)
    stats["by_lang"] = _breakdown(langs, nbytes, copies, tokens)
    return stats


def _rehydration(size: int, table: dict[int, float]) -> float:
    """The multiplier of the largest key <= size (1 when every key is larger)."""
    keys = [k for k in table if k <= size]
    return table[max(keys)] if keys else 1.0


def _breakdown(keys: list[str], nbytes: np.ndarray, copies: np.ndarray,
               tokens: np.ndarray | None = None) -> dict[str, dict[str, int]]:
    """Per key: documents and bytes before the mix, rows and bytes after (repeats counted), repeats."""
    out: dict[str, dict[str, int]] = {}
    key_arr = np.array(keys, dtype=object)
    for key in sorted(set(keys)):
        rows = key_arr == key
        entry = {
            "docs_before": int(rows.sum()),
            "bytes_before": int(nbytes[rows].sum()),
            "docs_after": int((copies[rows] > 0).sum()),
            "rows_after": int(copies[rows].sum()),
            "bytes_after": int((nbytes[rows] * copies[rows]).sum()),
            "repeats": int(copies[rows].sum() - (copies[rows] > 0).sum()),
        }
        if tokens is not None:
            entry["tokens_after_est"] = int(round(float((tokens[rows] * copies[rows]).sum())))
        out[key or "(none)"] = entry
    return out


def _concat(tables: list[pa.Table]) -> pa.Table:
    """One table over every input, with the union of their columns (missing ones filled with nulls)."""
    extra: dict[str, pa.DataType] = {}
    for table in tables:
        for field in table.schema:
            extra.setdefault(field.name, field.type)
    full = document_schema(extra)
    schema = pa.schema([f for f in full if f.name in extra]) if tables and "text" not in extra else full
    filled = []
    for table in tables:
        for field in schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        filled.append(table.select(schema.names).cast(schema))
    return pa.concat_tables(filled) if filled else schema.empty_table()


def _write_shards(table: pa.Table, out_dir: Path, split: str, shard_rows: int) -> list[str]:
    names = []
    count = max(1, math.ceil(table.num_rows / shard_rows))  # an empty split still gets its -00000 file
    for shard in range(count):
        name = f"{split}-{shard:05d}.parquet"
        part = table.slice(shard * shard_rows, shard_rows)
        pq.write_table(part, out_dir / name, row_group_size=ROW_GROUP_ROWS, compression="zstd")
        names.append(name)
    return names
