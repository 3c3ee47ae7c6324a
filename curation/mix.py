"""Mix the curated documents into train/val Parquet shards.

Every decision is a deterministic function of the document id and the seed, so the same inputs and
config give byte-identical shards whatever the input order:
* quality: rows with `quality_score < min_quality` are dropped (reason low_quality);
* split: a document is in val when hash(id) / 2^64 < val_fraction (seed-independent, so changing the seed
  or a weight never moves a document between train and val); if that leaves val empty, the document with
  the smallest hash goes there, so val always has at least one document;
* weight w of the document's language: floor(w) copies, plus one more with probability frac(w) decided by
  hash(seed, id) (0.5 keeps a deterministic half, 2 repeats every document twice, 0 drops: reason
  weight_zero or sampled_out);
* shuffle: rows are ordered by hash(seed, id, copy number).

Limitation: the eligible rows of one split are held in memory (an Arrow table) to shuffle them; an
external, bucketed shuffle for corpora larger than memory is a later issue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from curation.config import MixConfig
from curation.documents import ROW_GROUP_ROWS, document_schema, resolve_inputs

_TWO_64 = float(1 << 64)


def _hash(*parts: object) -> int:
    return xxhash.xxh64_intdigest("\x1f".join(str(p) for p in parts))


def mix(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig) -> dict[str, Any]:
    """Write `train-NNNNN.parquet` and `val-NNNNN.parquet` into `out_dir`; return counts and drop reasons."""
    files = resolve_inputs(inputs)
    tables = [pq.read_table(path) for path in files]
    schema = _union_schema(tables)
    table = pa.concat_tables([t.select(schema.names).cast(schema) for t in tables]) if tables else schema.empty_table()
    dropped: Counter[str] = Counter()

    if cfg.min_quality > 0:
        if "quality_score" not in table.column_names:
            raise ValueError("mix.min_quality > 0 needs a quality_score column: run the quality stage first")
        scores = table.column("quality_score").to_numpy(zero_copy_only=False)
        keep = np.nan_to_num(scores.astype(np.float64), nan=-1.0) >= cfg.min_quality
        dropped["low_quality"] += int((~keep).sum())
        table = table.filter(pa.array(keep))

    ids = table.column("id").to_pylist()
    langs = table.column("lang").to_pylist()
    split_hash = np.array([_hash("split", doc_id) for doc_id in ids], dtype=np.uint64)
    is_val = split_hash.astype(np.float64) / _TWO_64 < cfg.val_fraction
    if len(ids) and not is_val.any():
        is_val[int(np.argmin(split_hash))] = True

    rows: dict[str, list[tuple[int, int]]] = {"train": [], "val": []}  # (sort key, row index)
    for index, (doc_id, lang) in enumerate(zip(ids, langs)):
        weight = cfg.weights.get(lang or "", cfg.default_weight)
        copies = math.floor(weight)
        if _hash("sample", cfg.seed, doc_id) / _TWO_64 < weight - copies:
            copies += 1
        if copies == 0:
            dropped["weight_zero" if weight == 0 else "sampled_out"] += 1
            continue
        split = "val" if is_val[index] else "train"
        rows[split].extend((_hash("order", cfg.seed, doc_id, copy), index) for copy in range(copies))

    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"docs_in": sum(t.num_rows for t in tables), "dropped": dict(dropped)}
    for split, keyed in rows.items():
        keyed.sort()
        order = pa.array([index for _, index in keyed], type=pa.int64())
        split_table = table.take(order)
        files_written = _write_shards(split_table, out_dir, split, cfg.shard_rows)
        per_lang = Counter(split_table.column("lang").to_pylist())
        stats[split] = {"rows": split_table.num_rows, "files": files_written, "langs": dict(sorted(per_lang.items(), key=lambda kv: str(kv[0])))}
    return stats


def _union_schema(tables: list[pa.Table]) -> pa.Schema:
    extra: dict[str, pa.DataType] = {}
    for table in tables:
        for field in table.schema:
            extra.setdefault(field.name, field.type)
    schema = document_schema(extra)
    # Columns missing from some inputs are added as nulls so the tables concatenate.
    for i, table in enumerate(tables):
        for field in schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        tables[i] = table
    return schema


def _write_shards(table: pa.Table, out_dir: Path, split: str, shard_rows: int) -> list[str]:
    names = []
    count = max(1, math.ceil(table.num_rows / shard_rows))  # an empty split still gets its -00000 file
    for shard in range(count):
        name = f"{split}-{shard:05d}.parquet"
        part = table.slice(shard * shard_rows, shard_rows)
        pq.write_table(part, out_dir / name, row_group_size=ROW_GROUP_ROWS, compression="zstd")
        names.append(name)
    return names
