"""Mix the curated documents into train/val Parquet shards: the last curation stage.

What it is for: the `mix` stage (`curation.stages.run_mix`) turns the scored, deduplicated documents into the
corpus the tokenizer and the model read. Users change its weights and thresholds often, so it works from the
`quality` artifact alone and re-runs in about a second on the demo (bench/RESULTS.md).

Memory is bounded by a batch, one shuffle bucket and one output row group (5,000 rows: ~34 MB of web pages),
never by the corpus's text (bench/memory.py):

* **pass 1** (`_scan`) streams the shards in batches of `batch_rows` and keeps only the small per-document
  columns: language and source codes, quality_score, dup_cluster_size, text length in characters and bytes,
  and three id hashes (~70 bytes a document; the text itself is dropped batch by batch);
* every decision below is taken on those arrays (`_plan`);
* **pass 2** (`_write_splits`) streams the shards again, and sends each written row (each copy) with its
  shuffle key to a bucket file chosen by the key's top bits (an external shuffle: about `bucket_bytes` of
  text per bucket), then reads the buckets back in key order, sorts each one, and writes the shards.

Order of operations (every decision is a deterministic function of the document id and the seed, so the same
inputs and config give byte-identical shards whatever the batch size or the bucket count):

1. **Check the config against the input before any output** (`check_input`): reads only the small columns
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
7. **Shuffle**: rows are ordered by hash(seed, id, copy number) (then by input position, for equal ids);
   shards of `shard_rows` rows, row groups of <= 5,000 rows, zstd (docs/CONTRACTS.md).

Stats: docs and UTF-8 bytes per source and per language before and after (after counts repeats), repeats,
drops per reason, estimated tokens per language, the budget factor, and the shuffle's bucket count.

Parquet is read one row group at a time on one thread, and Arrow's unused pool memory is handed back after each
row group and bucket: `iter_batches` over a whole file reads ahead (217 MB held on a mixed shard of 14 row
groups), and without the release the allocator kept ~25 MB more at 16x the input than at 1x.

Limitations: the per-document arrays of pass 1 grow with the document count (~70 bytes a document: 7 GB for
100M documents), and the bucket count is capped at `MAX_BUCKETS` (open files), so past
MAX_BUCKETS x bucket_bytes (4 GB) of mixed text a bucket holds more than `bucket_bytes`. The bucket files need
about the mixed text's size in free space beside the output (checked before pass 2).

    .venv/bin/python -c "from curation.mix import mix; from curation.config import MixConfig; \\
        print(mix(['lmpipe-data/quality/<id>'], __import__('pathlib').Path('/tmp/mix'), MixConfig()))"
"""

from __future__ import annotations

import errno
import fnmatch
import math
import shutil
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

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
# Rows per streamed batch: ~5 MB of text for web pages of ~5 kB, small next to the ~150 MB the process needs
# for its libraries.
BATCH_ROWS = 1000
# Text per shuffle bucket (the bucket is read, sorted and written in memory: ~3x this at its peak).
BUCKET_BYTES = 8 << 20
# Bucket files are open at the same time while pass 2 runs: 512 per split stays under the usual 1,024 limit.
MAX_BUCKETS = 512
_KEY, _ROW = "__mix_key", "__mix_row"  # helper columns of the bucket files
_SCRATCH = ".mix-buckets"  # inside out_dir, removed before returning
_REASONS = ("", "low_quality", "below_top_fraction", "weight_zero", "sampled_out")


def _hash(*parts: object) -> int:
    return xxhash.xxh64_intdigest("\x1f".join(str(p) for p in parts))


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


@dataclass
class _Scan:
    """The small per-document columns of every input row, in input order (pass 1)."""

    langs: list[str] = field(default_factory=list)      # code -> language ('' for null)
    sources: list[str] = field(default_factory=list)    # code -> source ('' for null)
    lang: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    lang_null: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # the split stats count null apart
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    score: np.ndarray | None = None  # float64, null/NaN -> -1; None when no input has the column
    size: np.ndarray | None = None   # dup_cluster_size, null -> 1; None when no input has the column
    chars: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nbytes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    split_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    sample_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    top_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    @property
    def n(self) -> int:
        return len(self.lang)


def _codes(values: list[Any], index: dict[str, int], names: list[str]) -> np.ndarray:
    """Codes of `values` (null -> ''), extending `index`/`names` with values seen for the first time."""
    out = np.empty(len(values), dtype=np.int32)
    for i, v in enumerate(values):
        key = v or ""
        code = index.get(key)
        if code is None:
            code = index[key] = len(names)
            names.append(key)
        out[i] = code
    return out


def stream_batches(path: str | Path, columns: Sequence[str] | None = None,
                   batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The given columns (all when None; those the file lacks are left out) of one Parquet file, `batch_rows`
    rows at a time, one row group after the other. `ParquetFile.iter_batches` over the whole file reads
    ahead: on a mixed shard of 14 row groups of 34 MB it held 217 MB of Arrow memory, one row group 44 MB."""
    parquet = pq.ParquetFile(path)
    present = set(parquet.schema_arrow.names)
    wanted = None if columns is None else [c for c in columns if c in present]
    for group in range(parquet.metadata.num_row_groups):
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=wanted, use_threads=False)
        pa.default_memory_pool().release_unused()


def _scan(files: Sequence[Path], cfg: MixConfig | None = None, batch_rows: int = BATCH_ROWS) -> _Scan:
    """Pass 1: the small columns of every row; with `cfg`, also text lengths and the id hashes of the mix
    (the top-k hash only when `top_fraction` < 1: each hash is a Python call per document)."""
    full = cfg is not None
    wanted = ["id", "source", "lang", "quality_score", "dup_cluster_size", *(["text"] if full else [])]
    has = {c for path in files for c in pq.read_schema(path).names}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("lang", "lang_null", "source", "score", "size", "chars",
                                                             "nbytes", "split", "sample", "top")}
    lang_index: dict[str, int] = {}
    source_index: dict[str, int] = {}
    scan = _Scan()
    for path in files:
        for batch in stream_batches(path, wanted, batch_rows):
            names = batch.schema.names
            k = batch.num_rows

            # Defaults bind this batch's values: the helper is only called within this iteration.
            def column(name: str, batch: pa.RecordBatch = batch, names: list[str] = names, k: int = k) -> list[Any]:
                return batch.column(name).to_pylist() if name in names else [None] * k

            lang_values = column("lang")
            parts["lang"].append(_codes(lang_values, lang_index, scan.langs))
            parts["lang_null"].append(np.array([v is None for v in lang_values], dtype=bool))
            parts["source"].append(_codes(column("source"), source_index, scan.sources))
            for key, name, null in (("score", "quality_score", -1.0), ("size", "dup_cluster_size", 1)):
                if name in has:
                    col = batch.column(name) if name in names else pa.nulls(k, pa.float64())
                    arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
                    parts[key].append(np.nan_to_num(arr, nan=null))
            if full:
                text = batch.column("text").fill_null("") if "text" in names else pa.array([""] * k)
                parts["chars"].append(pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64))
                parts["nbytes"].append(pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64))
                ids = column("id")
                parts["split"].append(np.array([_hash("split", d) for d in ids], dtype=np.uint64))
                parts["sample"].append(np.array([_hash("sample", cfg.seed, d) for d in ids], dtype=np.uint64))
                if cfg.top_fraction < 1:
                    parts["top"].append(np.array([_hash("top", d) for d in ids], dtype=np.uint64))

    def cat(key: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    scan.lang, scan.lang_null, scan.source = cat("lang", np.int32), cat("lang_null", bool), cat("source", np.int32)
    scan.score = cat("score", np.float64) if "quality_score" in has else None
    scan.size = cat("size", np.int64) if "dup_cluster_size" in has else None
    scan.chars, scan.nbytes = cat("chars", np.int64), cat("nbytes", np.int64)
    scan.split_hash, scan.sample_hash = cat("split", np.uint64), cat("sample", np.uint64)
    scan.top_hash = cat("top", np.uint64)
    return scan


def _lang_weights(scan: _Scan, cfg: MixConfig) -> np.ndarray:
    """Language weight x source weight of every row."""
    lang_w = np.array([cfg.weights.get(lang, cfg.default_weight) for lang in scan.langs] or [0.0])
    source_w = np.array([source_weight_of(s, cfg) for s in scan.sources] or [0.0])
    return lang_w[scan.lang] * source_w[scan.source]


def check_input(files: Sequence[Path], cfg: MixConfig) -> None:
    """Check the config against the input's small columns, before any text is read (see module doc)."""
    _check(_scan(files), cfg)


def _check(scan: _Scan, cfg: MixConfig) -> None:
    n = scan.n
    if n == 0:
        return  # nothing to mix: an empty corpus gives empty shards, not an error
    check_sources(cfg, scan.sources)
    weight = _lang_weights(scan, cfg)
    lang_counts = np.bincount(scan.lang, minlength=len(scan.langs))
    if not (weight > 0).any():
        pairs = len(np.unique(scan.lang.astype(np.int64) * len(scan.sources) + scan.source))
        raise ValueError(
            f"mix weights sum to zero over the input's {n} documents (languages "
            f"{ {lang: int(c) for lang, c in zip(scan.langs, lang_counts)} }; "
            f"mix.weights {cfg.weights}, default_weight {cfg.default_weight}, source_weights {cfg.source_weights}); "
            f"give at least one present language/source a weight > 0 ({pairs} language/source pairs)")
    for lang in cfg.min_quality_lang:
        if lang not in scan.langs:
            raise ValueError(f"mix.min_quality_lang names language '{lang}', which has no document in the input "
                             f"(languages: {', '.join(sorted(scan.langs))})")
    if not _needs_scores(cfg):
        return
    if scan.score is None:
        raise ValueError("mix.min_quality / min_quality_lang / top_fraction need a quality_score column: "
                         "mix the quality stage's output")
    kept_any = False
    for code, lang in sorted(enumerate(scan.langs), key=lambda kv: kv[1]):
        rows = (scan.lang == code) & (weight > 0)
        if not rows.any():
            continue
        limit = _threshold(cfg, lang)
        passing = int((scan.score[rows] >= limit).sum())
        if passing == 0 and (lang in cfg.min_quality_lang or cfg.min_quality > 0):
            key = f"mix.min_quality_lang.{lang}" if lang in cfg.min_quality_lang else "mix.min_quality"
            raise ValueError(f"{key}={limit} keeps no '{lang}' document (highest '{lang}' quality_score: "
                             f"{scan.score[rows].max():.4f}); lower the threshold or set the language's weight to 0")
        kept_any = kept_any or passing > 0
    if not kept_any:
        raise ValueError("the quality thresholds keep no document with a weight > 0")


# ------------------------------------------------------------------------------------------------- mix


@dataclass
class _Plan:
    """What pass 2 writes: copies per row, its split, and the numbers behind the stats."""

    copies: np.ndarray   # int64 per row (0 = not written)
    is_val: np.ndarray   # bool per row
    reason: np.ndarray   # int8 index into _REASONS per row
    tokens: np.ndarray   # estimated tokens per row
    factor: float        # token-budget factor


def _rehydration_of(sizes: np.ndarray, table: dict[int, float]) -> np.ndarray:
    """Per row, the multiplier of the largest `table` key <= its cluster size (1 when every key is larger)."""
    keys = np.array(sorted(table), dtype=np.int64)
    multipliers = np.array([1.0, *(table[int(k)] for k in keys)])
    return multipliers[np.searchsorted(keys, sizes, side="right")]


def _plan(scan: _Scan, cfg: MixConfig) -> _Plan:
    """Steps 2-6 of the module doc on the pass-1 arrays."""
    n = scan.n
    keep = np.ones(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int8)
    if _needs_scores(cfg):  # 2. quality: per-language threshold, then the best top_fraction of each language
        assert scan.score is not None  # _check raised otherwise
        limits = np.array([_threshold(cfg, lang) for lang in scan.langs])[scan.lang]
        low = scan.score < limits
        keep &= ~low
        reason[low] = 1
        if cfg.top_fraction < 1:
            for code in range(len(scan.langs)):
                rows = np.flatnonzero(keep & (scan.lang == code))
                quota = math.ceil(len(rows) * cfg.top_fraction)
                # best first; equal scores in id-hash order, then input order (lexsort is stable)
                cut = rows[np.lexsort((scan.top_hash[rows], -scan.score[rows]))[quota:]]
                keep[cut] = False
                reason[cut] = 2
    weight = _lang_weights(scan, cfg)  # 3. language x source x rehydration
    if cfg.rehydrate and scan.size is not None:
        weight = weight * _rehydration_of(scan.size, cfg.rehydrate)
    cpt = np.array([cfg.chars_per_token.get(lang, DEFAULT_CHARS_PER_TOKEN) for lang in scan.langs] or [1.0])
    tokens = scan.chars / cpt[scan.lang]

    # 6. split (before sampling, so weights never move a document between train and val)
    is_val = scan.split_hash.astype(np.float64) / _TWO_64 < cfg.val_fraction
    eligible = keep & (weight > 0)
    forced = -1  # the document moved to val because the hash gave val none; it is kept whatever its weight
    if eligible.any() and not (is_val & eligible).any():
        candidates = np.flatnonzero(eligible)
        forced = int(candidates[int(np.argmin(scan.split_hash[candidates]))])
        is_val[forced] = True

    factor = 1.0  # 4. token budget: one factor for every weight
    if cfg.token_budget is not None:
        train_rows = eligible & ~is_val
        expected = float((weight[train_rows] * tokens[train_rows]).sum())
        factor = cfg.token_budget / expected if expected > 0 else 1.0

    w = weight * factor  # 5. copies: floor(w), one more with probability frac(w)
    whole = np.floor(w)
    copies = (whole + (scan.sample_hash.astype(np.float64) / _TWO_64 < w - whole)).astype(np.int64)
    copies[~keep] = 0
    copies[is_val] = np.minimum(copies[is_val], 1)
    if forced >= 0:
        copies[forced] = 1
    zero = keep & (copies == 0)
    reason[zero & (weight == 0)] = 3
    reason[zero & (weight != 0)] = 4
    return _Plan(copies, is_val, reason, tokens, factor)


@dataclass(frozen=True)
class Lengths:
    """Per input row: its language, its length in characters and how many rows of it the mix wrote. The corpus
    report draws its length plot from these instead of decoding the text column again: the mixed shards' full
    5,000-row row groups (~34 MB of text each) were the report's largest buffers."""

    langs: list[str]       # code -> language ('' for null)
    lang: np.ndarray       # int32 code per input row
    chars: np.ndarray      # int64 characters per input row (null text: 0)
    copies: np.ndarray     # int64 rows written per input row (0 = not in the mix)


def mix(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig, *, batch_rows: int = BATCH_ROWS,
        bucket_bytes: int = BUCKET_BYTES) -> dict[str, Any]:
    """Write `train-NNNNN.parquet` and `val-NNNNN.parquet` into `out_dir`; return stats (see module doc).

    `batch_rows` and `bucket_bytes` bound memory; they never change the output bytes."""
    return mix_with_lengths(inputs, out_dir, cfg, batch_rows=batch_rows, bucket_bytes=bucket_bytes)[0]


def mix_with_lengths(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig, *, batch_rows: int = BATCH_ROWS,
                     bucket_bytes: int = BUCKET_BYTES) -> tuple[dict[str, Any], Lengths]:
    """`mix`, plus the per-row lengths and copies the corpus report needs (`curation.report.write_report`)."""
    files = resolve_inputs(inputs)
    scan = _scan(files, cfg, batch_rows)
    _check(scan, cfg)  # raises before any output
    plan = _plan(scan, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _write_splits(files, scan, plan, cfg, out_dir, batch_rows, bucket_bytes)
    copies, tokens = plan.copies, plan.tokens
    dropped = Counter(_REASONS[r] for r in plan.reason[plan.reason > 0])
    stats: dict[str, Any] = {"docs_in": scan.n, "dropped": dict(sorted(dropped.items()))}
    for split, in_split in (("train", ~plan.is_val), ("val", plan.is_val)):
        rows_per = np.zeros(2 * len(scan.langs), dtype=np.int64)  # (language code, null) -> rows written
        np.add.at(rows_per, 2 * scan.lang[in_split] + scan.lang_null[in_split], copies[in_split])
        langs = {None if slot % 2 else scan.langs[slot // 2]: int(c) for slot, c in enumerate(rows_per) if c}
        stats[split] = {
            "rows": int(copies[in_split].sum()),
            "docs": int((in_split & (copies > 0)).sum()),
            "files": written[split]["files"],
            "langs": dict(sorted(langs.items(), key=lambda kv: str(kv[0]))),
            "tokens_est": int(round(float((tokens * copies)[in_split].sum()))),
        }
    stats["docs_out"] = int((copies > 0).sum())
    stats["rows_out"] = int(copies.sum())
    stats["repeats"] = int(copies.sum() - (copies > 0).sum())
    stats["budget"] = {"token_budget": cfg.token_budget, "factor": round(plan.factor, 6),
                       "train_tokens_est": stats["train"]["tokens_est"]}
    stats["by_source"] = _breakdown(scan.sources, scan.source, scan.nbytes, copies)
    stats["by_lang"] = _breakdown(scan.langs, scan.lang, scan.nbytes, copies, tokens)
    stats["shuffle"] = {split: {"buckets": w["buckets"]} for split, w in written.items()}
    return stats, Lengths(scan.langs, scan.lang, scan.chars, copies)


def _breakdown(names: list[str], codes: np.ndarray, nbytes: np.ndarray, copies: np.ndarray,
               tokens: np.ndarray | None = None) -> dict[str, dict[str, int]]:
    """Per key: documents and bytes before the mix, rows and bytes after (repeats counted), repeats."""
    out: dict[str, dict[str, int]] = {}
    for code, name in sorted(enumerate(names), key=lambda kv: kv[1]):
        rows = codes == code
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
        out[name or "(none)"] = entry
    return out


# --------------------------------------------------------------------------------- pass 2: the shuffle


def _union_schema(files: Sequence[Path]) -> pa.Schema:
    """The output schema: the document schema with every column any input has (missing ones become nulls)."""
    extra: dict[str, pa.DataType] = {}
    for path in files:
        for f in pq.read_schema(path):
            extra.setdefault(f.name, f.type)
    full = document_schema(extra)
    return pa.schema([f for f in full if f.name in extra]) if files and "text" not in extra else full


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


def _bucket_count(text_bytes: int, bucket_bytes: int) -> int:
    """A power of two (the bucket is the key's top bits) giving <= bucket_bytes of text a bucket, capped."""
    count = 1
    while count * bucket_bytes < text_bytes and count < MAX_BUCKETS:
        count *= 2
    return count


class _Buckets:
    """One split's shuffle buckets on disk. Rows arrive with their key (`_KEY`) and input position (`_ROW`), are
    buffered up to `flush_bytes`, and appended to the file of their bucket as length-prefixed Arrow IPC
    messages; `sorted_tables` reads the buckets back in key order, each one sorted. A file cut short (a crash
    while writing, a full disk) is detected by its length prefixes and never half-read."""

    def __init__(self, directory: Path, count: int, flush_bytes: int, schema: pa.Schema) -> None:
        self.dir, self.count, self.flush_bytes = directory, count, flush_bytes
        self.schema = schema.append(pa.field(_KEY, pa.uint64())).append(pa.field(_ROW, pa.int64()))
        self.shift = 64 - (count.bit_length() - 1)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, BinaryIO] = {}
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0

    def path(self, bucket: int) -> Path:
        return self.dir / f"bucket-{bucket:05d}.arrows"

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_bytes = [], 0
        keys = table.column(_KEY).to_numpy()
        bucket = keys >> np.uint64(self.shift) if self.count > 1 else np.zeros(len(keys), np.uint64)
        order = np.argsort(bucket, kind="stable")
        table, bucket = table.take(pa.array(order)), bucket[order]
        edges = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(bucket)]
        for start, end in zip(edges, edges[1:]):
            b = int(bucket[start])
            if b not in self._files:
                self._files[b] = open(self.path(b), "wb")
            for batch in table.slice(start, end - start).combine_chunks().to_batches():
                message = batch.serialize()
                self._files[b].write(struct.pack("<Q", message.size))
                self._files[b].write(message)
        del table
        pa.default_memory_pool().release_unused()

    def close(self) -> None:
        self.flush()
        for fh in self._files.values():
            fh.close()

    def _read(self, bucket: int) -> pa.Table:
        path = self.path(bucket)
        with pa.OSFile(str(path)) as fh:  # an Arrow buffer: the batches below are zero-copy slices of it
            data = fh.read_buffer()
        batches, at = [], 0
        while at < data.size:
            if at + 8 > data.size or at + 8 + struct.unpack_from("<Q", data, at)[0] > data.size:
                raise ValueError(f"mix: shuffle bucket file {path} is truncated at byte {at} of {data.size} "
                                 "(a crash or a full disk while it was written); run the mix again")
            size = struct.unpack_from("<Q", data, at)[0]
            batches.append(pa.ipc.read_record_batch(data.slice(at + 8, size), self.schema))
            at += 8 + size
        return pa.Table.from_batches(batches, self.schema)

    def sorted_tables(self) -> Iterator[pa.Table]:
        """Each non-empty bucket in key order, sorted by (key, input position), without the helper columns."""
        for bucket in sorted(self._files):
            table = self._read(bucket)
            order = pc.sort_indices(table, sort_keys=[(_KEY, "ascending"), (_ROW, "ascending")])
            ordered = table.take(order).drop_columns([_KEY, _ROW])
            del table, order  # the file's buffer (~bucket_bytes) is not held while the writer uses `ordered`
            pa.default_memory_pool().release_unused()
            yield ordered
            del ordered
            self.path(bucket).unlink()
            pa.default_memory_pool().release_unused()


class _ShardWriter:
    """Writes one split's sorted rows as `{split}-NNNNN.parquet` shards of `shard_rows` rows, row groups of
    <= ROW_GROUP_ROWS counted from each shard's start, zstd; a split without rows still gets its -00000 file."""

    def __init__(self, out_dir: Path, split: str, shard_rows: int, schema: pa.Schema) -> None:
        self.out_dir, self.split, self.shard_rows, self.schema = out_dir, split, shard_rows, schema
        self.names: list[str] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def _group_rows(self) -> int:
        return min(ROW_GROUP_ROWS, self.shard_rows - self._in_shard)

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self._group_rows():
            self._write_group(self._group_rows())

    def _write_group(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        rest = table.slice(rows)
        # one chunk per column, as a single table slice would be: the writer's page cuts follow its input chunks
        group = table.slice(0, rows).combine_chunks()
        del table  # the buckets wholly in `group` are freed before the writer encodes it
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        if self._writer is None:
            self.names.append(f"{self.split}-{len(self.names):05d}.parquet")
            self._writer = pq.ParquetWriter(self.out_dir / self.names[-1], self.schema, compression="zstd")
        self._writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
        del group
        self._in_shard += rows
        pa.default_memory_pool().release_unused()
        if self._in_shard == self.shard_rows:
            self._writer.close()
            self._writer, self._in_shard = None, 0

    def close(self) -> list[str]:
        if self._pending_rows:
            self._write_group(self._pending_rows)
        if self._writer is not None:
            self._writer.close()
        if not self.names:
            self.names.append(f"{self.split}-00000.parquet")
            pq.write_table(self.schema.empty_table(), self.out_dir / self.names[0], row_group_size=ROW_GROUP_ROWS,
                           compression="zstd")
        return self.names


def _check_space(directory: Path, text_bytes: int) -> None:
    """The bucket files hold the mixed text once more, uncompressed: refuse to start without room for them."""
    needed = int(text_bytes * 1.1) + (16 << 20)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"mix: the shuffle needs about {needed / 1e6:,.0f} MB of temporary space in "
                                    f"{directory}, which has {free / 1e6:,.0f} MB free")


def _write_splits(files: Sequence[Path], scan: _Scan, plan: _Plan, cfg: MixConfig, out_dir: Path, batch_rows: int,
                  bucket_bytes: int) -> dict[str, dict[str, Any]]:
    """Pass 2 (module doc): every written copy to its split's buckets, then the buckets in order to shards."""
    schema = _union_schema(files)
    scratch = out_dir / _SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)  # left by a killed run: rebuilt, never reused
    scratch.mkdir(parents=True)
    text = {split: int((scan.nbytes * plan.copies)[mask].sum()) for split, mask in
            (("train", ~plan.is_val), ("val", plan.is_val))}
    try:
        _check_space(scratch, sum(text.values()))
        buckets = {split: _Buckets(scratch / split, _bucket_count(size, bucket_bytes), bucket_bytes, schema)
                   for split, size in text.items()}
        offset = 0
        for path in files:
            for batch in stream_batches(path, None, batch_rows):
                _route(batch, offset, schema, plan, cfg.seed, buckets)
                offset += batch.num_rows
        result = {}
        for split, bucket_set in buckets.items():
            bucket_set.close()
            writer = _ShardWriter(out_dir, split, cfg.shard_rows, schema)
            for table in bucket_set.sorted_tables():
                writer.add(table)
            result[split] = {"files": writer.close(), "buckets": bucket_set.count}
        return result
    except OSError as e:
        if e.errno == errno.ENOSPC and "mix:" not in str(e):
            raise OSError(errno.ENOSPC, f"mix: no space left while writing {scratch} or {out_dir} (the shuffle "
                                        f"needs about {sum(text.values()) / 1e6:,.0f} MB there)") from e
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _route(batch: pa.RecordBatch, offset: int, schema: pa.Schema, plan: _Plan, seed: int,
           buckets: dict[str, _Buckets]) -> None:
    """Send each copy of each written row of `batch` (input rows offset..) to its split's buckets, keyed."""
    copies = plan.copies[offset: offset + batch.num_rows]
    chosen = np.flatnonzero(copies)
    if not len(chosen):
        return
    ids = batch.column("id").to_pylist()
    reps = copies[chosen]
    pos = np.repeat(chosen, reps)
    copy_no = np.arange(len(pos)) - np.repeat(np.cumsum(reps) - reps, reps)
    keys = np.array([_hash("order", seed, ids[p], c) for p, c in zip(pos.tolist(), copy_no.tolist())],
                    dtype=np.uint64)
    table = _conform(pa.Table.from_batches([batch]), schema).take(pa.array(pos))
    table = table.append_column(_KEY, pa.array(keys, pa.uint64())).append_column(_ROW, pa.array(pos + offset))
    val = plan.is_val[offset + pos]
    for split, rows in (("train", ~val), ("val", val)):
        if rows.any():
            buckets[split].add(table.filter(pa.array(rows)))
