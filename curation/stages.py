"""The curation stage functions that `flows/` (and the CLI, tests, notebooks) call.

Each is `run_<stage>(inputs, out_dir, cfg) -> stats`: it reads its parent's Parquet files (`inputs`;
raw files for ingest), writes `out_dir/docs-00000.parquet` (mix: train/val shards) and the dropped
documents to `out_dir/removed/removed-00000.parquet` with a `drop_reason` column, and returns
JSON-serialisable stats: docs in/out, drops per reason, seconds. It never writes manifest.json.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
from curation.mix import mix
from curation.readers import ReadStats, expand_inputs, read_records, source_name

OUTPUT_NAME = "docs-00000.parquet"
REMOVED_NAME = "removed/removed-00000.parquet"


class _Outputs:
    """The kept and removed writers of one stage, with their counters."""

    def __init__(self, out_dir: Path, extra: Mapping[str, Any], removed_extra: Iterable[str] = ()) -> None:
        self.kept = DocumentWriter(out_dir / OUTPUT_NAME, dict(extra))
        removed_columns: dict[str, Any] = dict(extra)
        removed_columns.update(dict.fromkeys(["drop_reason", *removed_extra]))
        self.removed = LazyWriter(out_dir / REMOVED_NAME, removed_columns)
        self.dropped: Counter[str] = Counter()

    def keep(self, row: Mapping[str, Any]) -> None:
        self.kept.write(row)

    def drop(self, row: Mapping[str, Any], reason: str, **extra: Any) -> None:
        self.dropped[reason] += 1
        self.removed.write({**row, "drop_reason": reason, **extra})

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


def run_ingest(inputs: Sequence[str | Path], out_dir: Path, cfg: IngestConfig) -> dict[str, Any]:
    """Read raw files (WARC/WET/JSONL/Parquet), extract main text from HTML, write documents.

    Inputs may be paths, globs, directories or fsspec URLs (`curation.readers.expand_inputs`).
    Drops: empty_text (extraction found no main text), binary / too_large / unparsable (an HTML payload
    that is not a page: `curation.extract.extract_document`), too_short (< cfg.min_chars characters).
    Records that are not documents (requests, metadata, non-HTML, …) are counted under `read.skipped`.
    """
    start = time.perf_counter()
    paths = expand_inputs(inputs)
    out = _Outputs(out_dir, {})
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


def run_langid(inputs: Sequence[str | Path], out_dir: Path, cfg: LangIdConfig) -> dict[str, Any]:
    """Fill lang/lang_score with `curation.langid.identify` (script rules + lid.176); drop other languages
    (lang:<code>; lang:none for text without a letter) and scores below the language's minimum (low_lang_score)."""
    start = time.perf_counter()
    files = _inputs(inputs)
    out = _Outputs(out_dir, extra_columns(files))
    wanted = set(cfg.languages)
    docs_in = 0
    for row in read_documents(files):
        docs_in += 1
        lang, score = langid.identify(row["text"] or "")
        row = {**row, "lang": lang, "lang_score": score}
        if lang not in wanted:
            out.drop(row, f"lang:{lang or 'none'}")
        elif score < cfg.min_score.get(lang, cfg.default_min_score):
            out.drop(row, "low_lang_score")
        else:
            out.keep(row)
    return {**out.close(), "docs_in": docs_in, "seconds": round(time.perf_counter() - start, 3)}


# ------------------------------------------------------------------------------------------- filter


def run_filter(inputs: Sequence[str | Path], out_dir: Path, cfg: FilterConfig) -> dict[str, Any]:
    """Replace PII (`curation.pii`), then apply the heuristic filters of `curation.filters`.

    The failed rule is the drop reason. PII is replaced in every document written, kept or removed, so
    removed/ holds no personal data either; `pii` in the stats counts replacements per kind and the number
    of documents changed (the DAG has no stage of its own for PII).
    """
    start = time.perf_counter()
    files = _inputs(inputs)
    out = _Outputs(out_dir, extra_columns(files))
    pii_counts: Counter[str] = Counter()
    pii_docs = 0
    docs_in = 0
    for row in read_documents(files):
        docs_in += 1
        text = row["text"] or ""
        if cfg.pii.enabled:
            text, found = pii.scrub(text, cfg.pii.kinds)
            if found:
                pii_docs += 1
                pii_counts.update(found)
                row = {**row, "text": text}
        reason = filters.check(text, row.get("lang"), cfg)
        if reason:
            out.drop(row, reason)
        else:
            out.keep(row)
    result = {**out.close(), "docs_in": docs_in}
    result["pii"] = {"docs": pii_docs, **{kind: pii_counts[kind] for kind in cfg.pii.kinds}}
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


# -------------------------------------------------------------------------------------------- dedup


# Characters of normalised text the dedup stage keeps between its passes (1-4 bytes each): 32-128
# MiB; the documents beyond it are normalised again in pass 2, as all of them were before.
_DEDUP_NORMALIZED_CHARS = 32 * 1024 * 1024


def run_dedup(inputs: Sequence[str | Path], out_dir: Path, cfg: DedupConfig) -> dict[str, Any]:
    """Exact then near-duplicate removal (see `curation.dedup`).

    Three streaming passes: (1) exact key, length and id of every document; (2) MinHash-LSH over one
    representative per exact group; (3) write. Kept documents get dup_cluster (the kept id) and
    dup_cluster_size (exact + near duplicates it stands for); removed ones get drop_reason
    exact_duplicate, near_duplicate or duplicate_id, and duplicate_of (the id that was kept).
    An id seen again with the same text is an exact_duplicate; with a different text, the first
    occurrence wins and later ones are dropped as duplicate_id (duplicate_of = that id).
    With `cfg.index_dir`, the batch is also deduplicated against the documents kept by earlier runs
    (duplicate_of is then the earlier document's id) and its kept documents are added to that index.
    """
    start = time.perf_counter()
    files = _inputs(inputs)
    # Pass 1: the exact group of every document, and its representative (longest text, then smallest id).
    best: dict[bytes, tuple[int, str]] = {}
    group_size: Counter[bytes] = Counter()
    first_key: dict[str, bytes] = {}  # id -> exact key of its first occurrence
    # id -> normalised text of first occurrences, kept for pass 2 up to a budget of characters: normalising
    # was ~half of the stage's CPU and pass 2 repeated it for every representative.
    normalized: dict[str, str] = {}
    budget = _DEDUP_NORMALIZED_CHARS
    docs_in = 0
    for row in read_documents(files):
        docs_in += 1
        norm = dedup.normalize(row["text"] or "")
        key = dedup.normalized_key(norm)
        if row["id"] in first_key:
            group_size[key] += first_key[row["id"]] == key  # the same document twice: an exact duplicate
            continue
        first_key[row["id"]] = key
        if len(norm) <= budget:
            normalized[row["id"]] = norm
            budget -= len(norm)
        group_size[key] += 1
        candidate = (-len(row["text"] or ""), row["id"])
        if key not in best or candidate < best[key]:
            best[key] = candidate
    representative = {key: doc for key, (_, doc) in best.items()}
    reps = set(representative.values())
    normalized = {doc: norm for doc, norm in normalized.items() if doc in reps}  # pass 2 needs only these
    del reps

    # Pass 2: near-duplicate clusters over the exact representatives only (first occurrences only).
    def representatives() -> Iterable[tuple[str, str]]:
        seen: set[str] = set()
        for row in read_documents(files):
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            # a first occurrence: its key is first_key's (not hashed again; exact_key normalises the text)
            if row["id"] == representative[first_key[row["id"]]]:
                yield row["id"], row["text"] or ""

    seen_before: set[str] = set()  # representatives whose cluster holds a document of an earlier batch
    clusters = dedup.near_duplicate_clusters(
        representatives(),
        threshold=cfg.threshold,
        num_perm=cfg.num_perm,
        word_ngram=cfg.word_ngram,
        char_ngram=cfg.char_ngram,
        seed=cfg.seed,
        bands=cfg.bands,
        rows=cfg.rows,
        index_dir=cfg.index_dir,
        workers=cfg.workers,
        index_matches=seen_before,
        normalized=normalized,
    )
    cluster_size: Counter[str] = Counter()
    for key, rep in representative.items():
        cluster_size[clusters[rep]] += group_size[key]

    # Pass 3: write.
    out = _Outputs(out_dir, {**extra_columns(files), "dup_cluster": None, "dup_cluster_size": None}, ["duplicate_of"])
    emitted: set[str] = set()
    matched_index = 0
    for row in read_documents(files):
        if row["id"] in emitted:  # a later occurrence of the id: hash its own text
            key = dedup.exact_key(row["text"] or "")
            if first_key[row["id"]] != key:
                out.drop(row, "duplicate_id", duplicate_of=row["id"])  # same id, different text: first one wins
                continue
        else:
            key = first_key[row["id"]]
        rep = representative[key]
        survivor = clusters[rep]
        if rep in seen_before:  # the cluster's survivor is in an earlier batch (possibly this very id)
            matched_index += 1
            out.drop(row, "near_duplicate", duplicate_of=survivor)
        elif row["id"] != rep or row["id"] in emitted:
            out.drop(row, "exact_duplicate", duplicate_of=survivor)
        elif survivor != rep:
            out.drop(row, "near_duplicate", duplicate_of=survivor)
        else:
            out.keep({**row, "dup_cluster": survivor, "dup_cluster_size": cluster_size[survivor]})
        emitted.add(row["id"])
    result = out.close()
    result.update(
        docs_in=docs_in,
        exact_groups=len(representative),
        clusters=len(set(clusters.values())),
        duplicates_of_index=matched_index,
        seconds=round(time.perf_counter() - start, 3),
    )
    return result


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
    negatives = [row["text"] for row in read_documents(_inputs(inputs))
                 if row["text"] and row.get("source") not in positive_files]
    if not positives:
        raise ValueError(f"quality_model.positives {cfg.positives} hold no document text; name "
                         "JSONL/JSON/Parquet/.txt files of curated reference text")
    if not negatives:
        raise ValueError("quality_model: no raw-crawl negatives (every ingested document comes from a "
                         "quality_model.positives file); add crawl inputs (WARC, JSONL) to the corpus")
    labelled, labels = quality.read_labels(cfg.labels) if cfg.labels else (None, None)
    params = quality.TrainParams(combiner_l2=cfg.combiner_l2, seed=cfg.seed, max_reference_docs=cfg.max_negatives)
    model = quality.train(positives, negatives, labelled, labels, params)
    model.info["sources"] = {"positives": sorted(positive_files), "labels": Path(cfg.labels).name if cfg.labels else None}
    path = model.save(out_dir / QUALITY_MODEL_NAME)
    return {"model": "trained", "positives": len(positives), "negatives": min(len(negatives), cfg.max_negatives),
            "labelled": len(labelled or []), "fitted_on": model.info["fitted_on"], "bytes": path.stat().st_size,
            "top_inputs": {name: round(w, 3) for name, w in model.explain()[:5]},
            "seconds": round(time.perf_counter() - start, 3)}


# The last few scorers loaded, by model file and its (mtime, size): reading the shipped model (a compressed
# .npz of ~1 MB) took ~0.03 s per stage run, half of the quality stage's CPU on the 56 pages of
# bench/curation.py, paid again by every run in a long-lived process (server, refresh flows, notebooks).
# A rewritten model file has a new mtime/size and is read again. Scoring does not modify the model.
_SCORERS: dict[tuple[str, int, int], quality.QualityModel] = {}
_SCORER_CACHE_SIZE = 4


def _scorer(path: str | Path | None) -> quality.QualityModel:
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
                model_file: str | Path | None = None) -> dict[str, Any]:
    """Add the quality_score column (no drops: thresholds are applied at mix time).

    The model: cfg.model_path when set ('default' = the shipped one), else `model_file` (the quality_model
    artifact, passed by flows.dag), else the shipped default model.
    """
    start = time.perf_counter()
    files = _inputs(inputs)
    chosen = cfg.model_path if cfg.model_path not in (None, "default") else None
    scorer = _scorer(chosen if chosen or cfg.model_path == "default" else model_file)
    out = _Outputs(out_dir, {**extra_columns(files), "quality_score": None})
    docs_in = 0
    total = 0.0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal total
        for row, score in zip(batch, scorer.score([r["text"] or "" for r in batch])):
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
        mean_quality=round(total / docs_in, 4) if docs_in else None,
        model=str(chosen or (model_file if cfg.model_path != "default" and model_file else "shipped default")),
        seconds=round(time.perf_counter() - start, 3),
    )
    return result


# ---------------------------------------------------------------------------------------------- mix


def run_mix(inputs: Sequence[str | Path], out_dir: Path, cfg: MixConfig) -> dict[str, Any]:
    """Quality threshold, language weights, deterministic split/shuffle, shards (see `curation.mix`)."""
    start = time.perf_counter()
    files = _inputs(inputs)
    result = mix(files, out_dir, cfg)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result
