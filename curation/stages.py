"""The curation stage functions that `flows/` (and the CLI, tests, notebooks) call.

Each is `run_<stage>(inputs, out_dir, cfg, shard=0) -> stats` over ONE shard: it reads its parent's Parquet
files (`inputs`, normally the parent's shard of the same number; raw files for ingest), writes
`out_dir/docs-{shard:05d}.parquet` (mix: train/val shards) and the dropped documents to
`out_dir/removed/removed-{shard:05d}.parquet` with a `drop_reason` column, and returns JSON-serialisable stats:
docs in/out, drops per reason, seconds. It never writes manifest.json. Running the shards in parallel, on
this machine or a cluster, is `flows.executor`'s job; dedup, which needs every shard, is three functions:
`dedup_signatures` (per shard), `dedup_decide_sharded` (ranks over every shard's sorted runs, bounded memory per
process), `dedup_write` (per shard).

A document that makes a step raise is dropped with reason `error:<ExceptionType>` (counted like any other
drop), never the shard.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curation import dedup, filters, langid, pii, quality
from curation.config import DedupConfig, FilterConfig, IngestConfig, LangIdConfig, MixConfig, QualityConfig
from curation.config import QualityModelConfig
from curation.documents import (
    DocumentWriter,
    LazyWriter,
    doc_id,
    extra_columns,
    read_documents,
    resolve_inputs,
)
from curation.extract import extract_document
from curation.mix import Lengths, mix_with_lengths
from curation.readers import ReadStats, expand_inputs, read_records, source_name

def output_name(shard: int = 0) -> str:
    """The kept documents of shard `shard`, relative to the stage's output directory."""
    return f"docs-{shard:05d}.parquet"


def removed_name(shard: int = 0) -> str:
    """The dropped documents of shard `shard`, relative to the stage's output directory."""
    return f"removed/removed-{shard:05d}.parquet"


OUTPUT_NAME = output_name(0)
REMOVED_NAME = removed_name(0)

# Called with the number of documents a shard has handled so far (every 256): the executor's progress display.
_PROGRESS: Callable[[int], None] | None = None


def set_progress_hook(fn: Callable[[int], None] | None) -> None:
    """Install (or remove, with None) the per-document progress callback of the running shard."""
    global _PROGRESS
    _PROGRESS = fn


def error_reason(e: BaseException) -> str:
    """The drop reason of a document that made a step raise."""
    return f"error:{type(e).__name__}"


class _Outputs:
    """The kept and removed writers of one stage's shard, with their counters."""

    def __init__(self, out_dir: Path, extra: Mapping[str, Any], removed_extra: Iterable[str] = (),
                 shard: int = 0) -> None:
        # A rerun of a shard (resume, retry) must not leave a removed file of an earlier, killed attempt.
        (out_dir / removed_name(shard)).unlink(missing_ok=True)
        self.kept = DocumentWriter(out_dir / output_name(shard), dict(extra))
        removed_columns: dict[str, Any] = dict(extra)
        removed_columns.update(dict.fromkeys(["drop_reason", *removed_extra]))
        self.removed = LazyWriter(out_dir / removed_name(shard), removed_columns)
        self.dropped: Counter[str] = Counter()
        self.handled = 0

    def _tick(self) -> None:
        self.handled += 1
        if _PROGRESS is not None and self.handled % 256 == 0:
            _PROGRESS(self.handled)

    def keep(self, row: Mapping[str, Any]) -> None:
        self.kept.write(row)
        self._tick()

    def drop(self, row: Mapping[str, Any], reason: str, **extra: Any) -> None:
        self.dropped[reason] += 1
        self.removed.write({**row, "drop_reason": reason, **extra})
        self._tick()

    def close(self) -> dict[str, Any]:
        self.kept.close()
        self.removed.close()
        return {"docs_out": self.kept.rows, "dropped": dict(sorted(self.dropped.items()))}


def _inputs(inputs: Sequence[str | Path]) -> list[Path]:
    files = resolve_inputs(inputs)
    if not files:
        raise ValueError(f"no Parquet input files in {[str(i) for i in inputs]}: pass the parent stage's output")
    return files


# ------------------------------------------------------------------------------------------- ingest


def run_ingest(inputs: Sequence[str | Path], out_dir: Path, cfg: IngestConfig, shard: int = 0) -> dict[str, Any]:
    """Read raw files (WARC/WET/JSONL/Parquet), extract main text from HTML, write documents.

    Inputs may be paths, globs, directories or fsspec URLs (`curation.readers.expand_inputs`).
    Drops: empty_text (extraction found no main text), binary / too_large / unparsable (an HTML payload
    that is not a page: `curation.extract.extract_document`), too_short (< cfg.min_chars characters).
    Records that are not documents (requests, metadata, non-HTML, …) are counted under `read.skipped`.
    """
    start = time.perf_counter()
    paths = expand_inputs(inputs)
    out = _Outputs(out_dir, {}, shard=shard)
    read_stats: dict[str, Any] = {}
    skipped: Counter[str] = Counter()
    damaged = 0
    for path in paths:
        stats = ReadStats()
        name = source_name(path)
        for record in read_records(path, stats):
            reason = "empty_text"
            if record["kind"] == "html":
                page = extract_document(record["content"], record["url"], record["charset"], cfg.fallback,
                                        cfg.fallback_min_page_chars)
                text, title = page.text, page.title
                if page.reason in ("binary", "too_large", "unparsable", "error"):
                    reason = page.reason
            else:
                text, title = record["content"].strip(), record["title"] or ""
            row = {
                # Always our own id: ids given in JSONL/Parquet inputs are only unique within their file,
                # so they stand in for the url (the stable part) when there is none.
                "id": doc_id(record["url"] or record["id"], text),
                "text": text,
                "url": record["url"],
                "title": record["title"] or title,
                "source": name,
            }
            if not text:
                out.drop(row, reason)
            elif len(text) < cfg.min_chars:
                out.drop(row, "too_short")
            else:
                out.keep(row)
        read_stats[name] = stats.as_dict()
        skipped.update(stats.skipped)
        damaged += len(stats.damage)
    result = out.close()
    result["docs_in"] = sum(s["yielded"] for s in read_stats.values())
    result["read"] = {"skipped": dict(sorted(skipped.items())), "damaged": damaged, "files": read_stats}
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


# ------------------------------------------------------------------------------------------- langid


def run_langid(inputs: Sequence[str | Path], out_dir: Path, cfg: LangIdConfig, shard: int = 0) -> dict[str, Any]:
    """Repair mojibake (`curation.filters.fix_encoding`: before identification, since zh text read as Latin-1
    identifies as Norwegian), then fill lang/lang_score with `curation.langid.identify` (script rules + lid.176);
    drop damage that cannot be undone (mojibake), other languages (lang:<code>; lang:none for text without a
    letter) and scores below the language's minimum (low_lang_score). `encoding_repaired` counts repairs."""
    start = time.perf_counter()
    files = _inputs(inputs)
    out = _Outputs(out_dir, extra_columns(files), shard=shard)
    wanted = set(cfg.languages)
    docs_in = repaired = 0
    for row in read_documents(files):
        docs_in += 1
        try:
            text, damage = filters.fix_encoding(row["text"] or "")
            lang, score = langid.identify(text)
        except Exception as e:  # noqa: BLE001 -- one bad document is a counted drop, not a lost shard
            out.drop(row, error_reason(e))
            continue
        if damage:
            out.drop(row, damage)
            continue
        if text != (row["text"] or ""):
            repaired += 1
            row = {**row, "text": text}
        row = {**row, "lang": lang, "lang_score": score}
        if lang not in wanted:
            out.drop(row, f"lang:{lang or 'none'}")
        elif score < cfg.min_score.get(lang, cfg.default_min_score):
            out.drop(row, "low_lang_score")
        else:
            out.keep(row)
    return {**out.close(), "docs_in": docs_in, "encoding_repaired": repaired,
            "seconds": round(time.perf_counter() - start, 3)}


# ------------------------------------------------------------------------------------------- filter


def run_filter(inputs: Sequence[str | Path], out_dir: Path, cfg: FilterConfig, shard: int = 0) -> dict[str, Any]:
    """Replace PII (`curation.pii`), then apply the heuristic filters of `curation.filters`.

    The failed rule is the drop reason. PII is replaced in every document written, kept or removed, so
    removed/ holds no personal data either; `pii` in the stats counts replacements per kind and the number
    of documents changed (the DAG has no stage of its own for PII).
    """
    start = time.perf_counter()
    files = _inputs(inputs)
    out = _Outputs(out_dir, extra_columns(files), shard=shard)
    contamination = None
    if cfg.decontam:  # eval text is looked for first, so the corpus report counts it per eval set
        from evals.decontam import index_for

        contamination = index_for(tuple(cfg.decontam_extra))
    pii_counts: Counter[str] = Counter()
    pii_docs = 0
    docs_in = 0
    for row in read_documents(files):
        docs_in += 1
        text = row["text"] or ""
        try:
            found = None
            if cfg.pii.enabled:
                text, found = pii.scrub(text, cfg.pii.kinds)
            sets = contamination.overlaps(text) if contamination else []
            reason = f"decontam:{sets[0]}" if sets else filters.check(text, row.get("lang"), cfg, row.get("title"))
        except Exception as e:  # noqa: BLE001 -- written with its PII-free text only: drop the raw one
            out.drop({**row, "text": None}, error_reason(e))
            continue
        if found:
            pii_docs += 1
            pii_counts.update(found)
            row = {**row, "text": text}
        if reason:
            out.drop(row, reason)
        else:
            out.keep(row)
    result = {**out.close(), "docs_in": docs_in}
    result["pii"] = {"docs": pii_docs, **{kind: pii_counts[kind] for kind in cfg.pii.kinds}}
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


# -------------------------------------------------------------------------------------------- dedup


def _dedup_params(cfg: DedupConfig) -> dict[str, int]:
    bands, rows = ((cfg.bands, cfg.rows) if cfg.bands and cfg.rows
                   else dedup.bands_rows_for_recall(cfg.threshold, cfg.num_perm))
    if bands * rows > cfg.num_perm:
        raise ValueError(f"bands * rows ({bands} x {rows}) exceeds num_perm ({cfg.num_perm})")
    return dict(num_perm=cfg.num_perm, seed=cfg.seed, bands=bands, rows=rows, word_ngram=cfg.word_ngram,
                char_ngram=cfg.char_ngram)


def dedup_signatures(inputs: Sequence[str | Path], prefix: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Dedup, per shard: exact key, length and MinHash band keys of every document (`curation.dedup`)."""
    from curation import dedup_sharded

    start = time.perf_counter()
    files = _inputs(inputs)
    # Signatures, shingles and sorted runs take about 3x the shard's Parquet bytes (measured 2.1-2.6x on the
    # synthetic web pages of bench/dedup.py --scale): refuse up front rather than die on a full disk.
    dedup_sharded.check_free_space(prefix.parent, 3 * sum(_file_bytes(f) for f in files))
    rows = ((row["id"], row["text"] or "") for row in read_documents(files, columns=["id", "text"]))
    n = dedup.write_shard_signatures(rows, prefix, tick=_PROGRESS, **_dedup_params(cfg))
    return {"docs_in": n, "seconds": round(time.perf_counter() - start, 3)}


def _file_bytes(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # not a local file (object storage): no estimate
        return 0


# Decision codes of `dedup_decide`, one per document of a shard (same order as the shard's rows).
_KEEP, _EXACT, _NEAR, _DUP_ID = 0, 1, 2, 3
_DECISION_REASONS = {_EXACT: "exact_duplicate", _NEAR: "near_duplicate", _DUP_ID: "duplicate_id"}


def dedup_decide(prefixes: Sequence[Path], decisions_dir: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Dedup, all shards at once (one process): exact groups, near-duplicate clusters, one decision per document.

    The reference the bounded-memory `dedup_decide_sharded` (which the stage runs) is tested against; its memory
    grows with documents (~1.1 KB each). Reads only the signature files (no text). Writes
    `decisions_dir/decisions-{shard:05d}.parquet` (code, duplicate_of, dup_cluster, dup_cluster_size per row).
    Rules, in shard order: see `run_dedup`.
    """
    start = time.perf_counter()
    shards = [dedup.ShardSignatures(p) for p in prefixes]
    try:
        return _decide(shards, decisions_dir, cfg, start)
    finally:
        for sh in shards:
            sh.close()


def _decide(shards: list[dedup.ShardSignatures], decisions_dir: Path, cfg: DedupConfig, start: float) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Exact groups and their representative (longest text, then smallest id), over first occurrences of ids.
    best: dict[bytes, tuple[int, str, int, int]] = {}  # key -> (-length, id, shard, row)
    group_size: Counter[bytes] = Counter()
    first_key: dict[str, bytes] = {}
    for s_no, sh in enumerate(shards):
        for row, (doc, key) in enumerate(zip(sh.ids, sh.exact)):
            if doc in first_key:
                group_size[key] += first_key[doc] == key  # the same document twice: an exact duplicate
                continue
            first_key[doc] = key
            group_size[key] += 1
            candidate = (-int(sh.lengths[row]), doc, s_no, row)
            if key not in best or candidate[:2] < best[key][:2]:
                best[key] = candidate
    representative = {key: b[1] for key, b in best.items()}
    # Near-duplicate clusters over the representatives, in the order of their first occurrence.
    picks = sorted((b[2], b[3]) for b in best.values())
    ids = [shards[s].ids[r] for s, r in picks]
    lengths = np.array([shards[s].lengths[r] for s, r in picks], dtype=np.int64)
    bands = _dedup_params(cfg)["bands"]
    keys = np.stack([shards[s].keys[r] for s, r in picks]) if picks else np.zeros((0, bands), np.uint32)
    valid = np.array([bool(shards[s].valid[r]) for s, r in picks], dtype=bool)
    digest = dedup.batch_digest((shards[s].ids[r], shards[s].digests[r]) for s, r in picks)
    index = dedup.DedupIndex(cfg.index_dir, _dedup_params(cfg)) if cfg.index_dir else None
    seen_before: set[str] = set()  # representatives whose cluster holds a document of an earlier batch
    clusters = dedup.cluster_signatures(ids, lengths, keys, valid, digest, dedup.ShardShingles(shards, picks),
                                        threshold=cfg.threshold, index=index, index_matches=seen_before)
    del ids, lengths, keys, valid, picks
    cluster_size: Counter[str] = Counter()
    for key, rep in representative.items():
        cluster_size[clusters[rep]] += group_size[key]
    # One decision per document, shard by shard.
    emitted: set[str] = set()
    matched_index = 0
    schema = pa.schema([("code", pa.int8()), ("duplicate_of", pa.string()), ("dup_cluster", pa.string()),
                        ("dup_cluster_size", pa.int64())])
    decisions_dir.mkdir(parents=True, exist_ok=True)
    for s_no, sh in enumerate(shards):
        cols: dict[str, list[Any]] = {name: [] for name in schema.names}
        for doc, own_key in zip(sh.ids, sh.exact):
            code, dup_of, cluster, size = _KEEP, None, None, None
            key = first_key[doc]
            if doc in emitted and own_key != key:
                code, dup_of = _DUP_ID, doc  # same id, different text: the first one wins
            else:
                rep = representative[key]
                survivor = clusters[rep]
                if rep in seen_before:  # the cluster's survivor is in an earlier batch (possibly this very id)
                    matched_index += 1
                    code, dup_of = _NEAR, survivor
                elif doc != rep or doc in emitted:
                    code, dup_of = _EXACT, survivor
                elif survivor != rep:
                    code, dup_of = _NEAR, survivor
                else:
                    cluster, size = survivor, cluster_size[survivor]
                emitted.add(doc)
            for name, value in zip(schema.names, (code, dup_of, cluster, size)):
                cols[name].append(value)
        part = decisions_dir / f".decisions-{s_no:05d}.part"
        pq.write_table(pa.Table.from_pydict(cols, schema=schema), part)
        os.replace(part, decisions_dir / f"decisions-{s_no:05d}.parquet")
    return {"exact_groups": len(representative), "clusters": len(set(clusters.values())),
            "duplicates_of_index": matched_index, "seconds": round(time.perf_counter() - start, 3)}


RankRunner = Callable[[str, Callable[[int], dict[str, Any]], int], list[dict[str, Any]]]


def _in_process(label: str, fn: Callable[[int], dict[str, Any]], ranks: int) -> list[dict[str, Any]]:
    return [fn(rank) for rank in range(ranks)]


def dedup_decide_sharded(prefixes: Sequence[Path], decisions_dir: Path, cfg: DedupConfig,
                         run_ranks: RankRunner = _in_process, resign: Callable[[int], Any] | None = None,
                         min_ranks: int = 1) -> dict[str, Any]:
    """Dedup decisions with bounded memory per process (`curation.dedup_sharded`), same files as `dedup_decide`.

    `run_ranks(label, fn, n)` runs fn(0..n-1) (in this process by default; `flows.sharded` passes the
    executor); `resign(shard)` signs a shard again when its runs are missing or damaged (checked first).
    """
    from functools import partial

    from curation import dedup_sharded as ds

    start = time.perf_counter()
    prefixes = list(prefixes)
    bad = ds.check_runs(prefixes)
    for s in bad:
        if resign is None:
            raise ds.CorruptRun(f"dedup: the signature files of shard {s} ({prefixes[s]}) are damaged")
        resign(s)
    if ds.check_runs([prefixes[s] for s in bad]):
        raise ds.CorruptRun(f"dedup: shards {bad} are still damaged after signing them again")
    params = _dedup_params(cfg)
    work = decisions_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    plan = ds.plan(prefixes, params["bands"], min_ranks=min_ranks)
    ranks = plan["ranks"]
    steps = {"ids": run_ranks("ids", partial(ds.ids_rank, prefixes, work, ranks["ids"]), ranks["ids"])}
    steps["exact"] = run_ranks("exact", partial(ds.exact_rank, prefixes, work, ranks["exact"]), ranks["exact"])
    ds.candidate_mask(prefixes, work)
    batch = ds.batch_name(prefixes, work)
    index_dir = str(cfg.index_dir) if cfg.index_dir else None
    steps["bands"] = run_ranks("bands", partial(ds.bands_rank, prefixes, work, ranks["bands"], params, cfg.threshold,
                                                index_dir, batch), ranks["bands"])
    decided = ds.finish(prefixes, work, decisions_dir, index_dir=index_dir, batch=batch, update_index=True,
                        params=params)
    decided["ranks"] = ranks
    decided["rebuilt_shards"] = bad
    decided["candidates"] = sum(p["candidates"] for p in steps["bands"])
    decided["seconds"] = round(time.perf_counter() - start, 3)
    return decided


def dedup_write(inputs: Sequence[str | Path], decisions: Path, out_dir: Path, shard: int = 0) -> dict[str, Any]:
    """Dedup, per shard: write kept documents (dup_cluster, dup_cluster_size) and removed ones (duplicate_of)."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    files = _inputs(inputs)
    table = pq.read_table(decisions)
    out = _Outputs(out_dir, {**extra_columns(files), "dup_cluster": None, "dup_cluster_size": None}, ["duplicate_of"],
                   shard=shard)
    docs_in = 0
    columns = (table[c].to_pylist() for c in table.column_names)
    for row, code, dup_of, cluster, size in zip(read_documents(files), *columns):
        docs_in += 1
        if code == _KEEP:
            out.keep({**row, "dup_cluster": cluster, "dup_cluster_size": size})
        else:
            out.drop(row, _DECISION_REASONS[code], duplicate_of=dup_of)
    if docs_in != table.num_rows:
        raise ValueError(f"dedup: {files} hold {docs_in} documents but {decisions} has {table.num_rows} decisions")
    return {**out.close(), "docs_in": docs_in, "seconds": round(time.perf_counter() - start, 3)}


def run_dedup(inputs: Sequence[str | Path], out_dir: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Exact then near-duplicate removal (see `curation.dedup`), each input file a shard, in one process.

    The DAG runs the same three steps with the shards in parallel (`flows.sharded`): signatures per shard,
    decisions over all of them, writing per shard. Kept documents get dup_cluster (the kept id) and
    dup_cluster_size (exact + near duplicates it stands for); removed ones get drop_reason
    exact_duplicate, near_duplicate or duplicate_id, and duplicate_of (the id that was kept).
    An id seen again with the same text is an exact_duplicate; with a different text, the first
    occurrence wins and later ones are dropped as duplicate_id (duplicate_of = that id).
    With `cfg.index_dir`, the batch is also deduplicated against the documents kept by earlier runs
    (duplicate_of is then the earlier document's id) and its kept documents are added to that index.
    """
    import shutil
    import tempfile

    start = time.perf_counter()
    files = _inputs(inputs)
    work = Path(tempfile.mkdtemp(prefix="dedup-"))
    try:
        prefixes = [work / f"sig-{i:05d}" for i in range(len(files))]
        parts = [dedup_signatures([f], p, cfg) for f, p in zip(files, prefixes)]
        decided = dedup_decide_sharded(prefixes, work, cfg,
                                       resign=lambda s: dedup_signatures([files[s]], prefixes[s], cfg))
        written = [dedup_write([f], work / f"decisions-{i:05d}.parquet", out_dir, i) for i, f in enumerate(files)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return merge_dedup_stats(parts, decided, written, time.perf_counter() - start)


def merge_dedup_stats(signed: list[dict[str, Any]], decided: dict[str, Any], written: list[dict[str, Any]],
                      seconds: float) -> dict[str, Any]:
    """The dedup stage's stats from its three steps (the same keys as the single-process stage had)."""
    dropped: Counter[str] = Counter()
    for w in written:
        dropped.update(w["dropped"])
    return {"docs_out": sum(w["docs_out"] for w in written), "dropped": dict(sorted(dropped.items())),
            "docs_in": sum(s["docs_in"] for s in signed), "exact_groups": decided["exact_groups"],
            "clusters": decided["clusters"], "duplicates_of_index": decided["duplicates_of_index"],
            "seconds": round(seconds, 3)}


# ------------------------------------------------------------------------------------------ quality


QUALITY_MODEL_NAME = "quality_model.npz"


def run_quality_model(inputs: Sequence[str | Path], out_dir: Path, cfg: QualityModelConfig) -> dict[str, Any]:
    """Train the quality scorer (`curation.quality.train`) and write `out_dir/quality_model.npz`.

    Positives: the documents of cfg.positives; negatives: up to cfg.max_negatives documents of `inputs` (the
    ingest output, i.e. the raw crawl), minus those ingested from a positives file; the combiner is fitted on
    cfg.labels when given. Without positives the shipped default model is copied (documented in the stats).
    """
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.positives:
        model = quality.load(None)
        model.save(out_dir / QUALITY_MODEL_NAME)
        return {"model": "shipped default", "seconds": round(time.perf_counter() - start, 3)}
    positives = [t for p in cfg.positives for t in quality.read_texts(p)]
    positive_files = {Path(p).name for p in cfg.positives}
    # streamed: one batch and max_negatives pieces in memory, whatever the ingest size (bench/memory.py)
    negatives = quality.sample_negatives(_inputs(inputs), cfg.max_negatives, cfg.seed, positive_files)
    if not positives:
        raise ValueError(f"quality_model.positives {cfg.positives} hold no document text; name "
                         "JSONL/JSON/Parquet/.txt files of curated reference text")
    if not negatives:
        raise ValueError("quality_model: no raw-crawl negatives (every ingested document comes from a "
                         "quality_model.positives file); add crawl inputs (WARC, JSONL) to the corpus")
    labelled, labels = quality.read_labels(cfg.labels) if cfg.labels else (None, None)
    params = quality.TrainParams(combiner_l2=cfg.combiner_l2, seed=cfg.seed, max_reference_docs=cfg.max_negatives)
    model = quality.train(positives, negatives, labelled, labels, params)
    model.info["sources"] = {"positives": sorted(positive_files),
                             "labels": Path(cfg.labels).name if cfg.labels else None}
    path = model.save(out_dir / QUALITY_MODEL_NAME)
    return {"model": "trained", "positives": len(positives), "negatives": len(negatives),
            "labelled": len(labelled or []), "fitted_on": model.info["fitted_on"], "bytes": path.stat().st_size,
            "top_inputs": {name: round(w, 3) for name, w in model.explain()[:5]},
            "seconds": round(time.perf_counter() - start, 3)}


# The last few scorers loaded, by model file and its (mtime, size): reading the shipped model (a compressed
# .npz of ~1 MB) took ~0.03 s per stage run, half of the quality stage's CPU on the 56 pages of
# bench/curation.py, paid again by every run in a long-lived process (server, refresh flows, notebooks).
# A rewritten model file has a new mtime/size and is read again. Scoring does not modify the model.
_SCORERS: dict[tuple[str, int, int], quality.QualityModel | quality.PlainModel] = {}
_SCORER_CACHE_SIZE = 4


def _scorer(path: str | Path | None) -> quality.QualityModel | quality.PlainModel:
    """`quality.load(path)`, served from `_SCORERS` when the same file (same mtime and size) was loaded before."""
    resolved = Path(path) if path is not None else quality.DEFAULT_MODEL
    try:
        st = resolved.stat()
    except OSError:
        return quality.load(path)  # quality.load raises the clear error for a missing file
    key = (str(resolved.resolve()), st.st_mtime_ns, st.st_size)
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = quality.load(path)
        if len(_SCORERS) >= _SCORER_CACHE_SIZE:
            _SCORERS.pop(next(iter(_SCORERS)))
        _SCORERS[key] = scorer
    return scorer


def run_quality(inputs: Sequence[str | Path], out_dir: Path, cfg: QualityConfig,
                model_file: str | Path | None = None, shard: int = 0) -> dict[str, Any]:
    """Add the quality_score column (no drops: thresholds are applied at mix time).

    The model: cfg.model_path when set ('default' = the shipped one), else `model_file` (the quality_model
    artifact, passed by flows.dag), else the shipped default model.
    """
    start = time.perf_counter()
    files = _inputs(inputs)
    chosen = cfg.model_path if cfg.model_path not in (None, "default") else None
    scorer = _scorer(chosen if chosen or cfg.model_path == "default" else model_file)
    out = _Outputs(out_dir, {**extra_columns(files), "quality_score": None}, shard=shard)
    docs_in = 0
    total = 0.0
    batch: list[dict[str, Any]] = []

    def scores() -> list[float | BaseException]:
        try:
            return list(scorer.score([r["text"] or "" for r in batch]))
        except Exception:  # noqa: BLE001 -- find the document that raises: score one by one
            one: list[float | BaseException] = []
            for r in batch:
                try:
                    one.append(scorer.score([r["text"] or ""])[0])
                except Exception as e:  # noqa: BLE001
                    one.append(e)
            return one

    def flush() -> None:
        nonlocal total
        for row, score in zip(batch, scores()):
            if isinstance(score, BaseException):
                out.drop(row, error_reason(score))
                continue
            total += score
            out.keep({**row, "quality_score": score})
        batch.clear()

    for row in read_documents(files):
        docs_in += 1
        batch.append(row)
        if len(batch) >= 1000:
            flush()
    flush()
    result = out.close()
    result.update(
        docs_in=docs_in,
        quality_sum=total,  # the sharded stage's mean_quality is the sum over shards / docs out
        mean_quality=round(total / result["docs_out"], 4) if result["docs_out"] else None,
        model=str(chosen or (model_file if cfg.model_path != "default" and model_file else "shipped default")),
        seconds=round(time.perf_counter() - start, 3),
    )
    return result


# ---------------------------------------------------------------------------------------------- mix


def run_mix(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig) -> dict[str, Any]:
    """Quality threshold, language weights, deterministic split/shuffle, shards (see `curation.mix`)."""
    return run_mix_with_lengths(inputs, out_dir, cfg)[0]


def run_mix_with_lengths(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig) -> tuple[dict[str, Any], Lengths]:
    """`run_mix`, plus the per-row lengths the corpus report takes (`curation.mix.Lengths`)."""
    start = time.perf_counter()
    files = _inputs(inputs)
    result, lengths = mix_with_lengths(files, out_dir, cfg)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result, lengths
