"""Incremental corpus refresh: process only the raw files no earlier corpus version covers, make a new version.

Run it as ``lmpipe run corpus --incremental --input DIR`` (``--no-prefect`` too), on a schedule with
``lmpipe serve`` (which registers the corpus flow with ``incremental=True``), or from the Prefect UI with the
corpus flow's ``incremental`` parameter. Both paths call :func:`run_incremental`; only the stage runner differs.

A **corpus version** is a ``mix`` artifact. Version 1 is mix(quality of delta 1); version n is
mix(quality of deltas 1 … n) and its parents also name version n-1, so ``lmpipe lineage`` walks the chain back
to every raw file. ``<root>/refs/corpus.json`` names the current version (and the history); it moves only after
the new version is complete, in one atomic rename.

One refresh:

1. **Inputs**: a directory stands for the raw files directly inside it (WARC/WET/JSONL/Parquet by suffix),
   re-listed at every run, so files dropped there are picked up (``lmpipe crawl --out DIR`` too: its
   ``crawl-log.jsonl`` is not taken for documents). Hidden files and ``*.part``/``*.tmp`` are ignored: write a
   file under such a name and rename it when complete. With ``crawl.seeds``/``crawl.seeds_file`` the crawl stage
   runs first (skipped when its id, over config and seeds file, is complete; ``refresh=["crawl"]`` crawls
   again) and its WARC files are candidates like any other file.
2. **Delta**: a file whose SHA-256 appears among the raw inputs of the current version's lineage is already
   covered (whatever its name now); the rest are new. No new file → ``nothing_new``: no stage runs, no
   version is made, the ref does not move. (Hashing reads every candidate file: ~1 s per GB.)
3. **Delta stages**: ingest → langid → filter → dedup → quality run as ordinary stage artifacts over the new
   files only (their ids cover those files), so files of earlier versions are never re-extracted or re-filtered.
   ``dedup`` uses the persistent index ``dedup.index_dir`` (default ``<root>/index/dedup``): a document that
   near-duplicates (Jaccard ≥ threshold, exact copies included) one kept by an earlier version is dropped with
   ``duplicate_of`` = the earlier id, and the delta's kept documents join the index as one segment. After the
   version is committed, segments are merged once there are more than 8 (``curation.dedup.compact_index``), so
   a refresh looks up a bounded number of sorted segments: its cost follows its own size, not the index's.
4. **Version**: mix over the quality outputs of every delta so far. Mix re-reads all deltas (it is the cheap
   stage: a split by id hash, so a document never moves between train and val across versions); the current
   mix config applies to the whole corpus, other stage configs to new files only.

Two refreshes at once on a local store queue on an exclusive lock (``<root>/refs/corpus.lock``); on an object
store, rely on the deployment's concurrency limit of 1 (prefect.yaml, ``lmpipe serve``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from flows import dag
from flows.config import PipelineConfig, UserError, raw_files_in
from storage.store import ArtifactNotFound, ArtifactStore, Manifest, sha256_file

REF = "corpus"
# The learned quality scorer is trained once (with version 1) and reused by later deltas, so that quality scores,
# and mix's thresholds and top_fraction over them, mean the same in every delta of a version.
SHARED_ACROSS_VERSIONS = ("quality_model",)

# (stage name, config of the delta, parent ids, force) -> {"id", "built", "seconds"}
StageRunner = Callable[[str, PipelineConfig, dict[str, str], bool], dict[str, Any]]


@dataclass
class Plan:
    """What one refresh will do, decided from the ref, the lineage and the input files alone."""

    previous: str | None  # mix id of the current version; None before the first refresh
    version: int  # the number the new version gets
    deltas: list[str]  # the last delta-stage ids (quality) of every earlier delta
    new_inputs: list[str]  # raw files to process now
    covered: list[str]  # raw files skipped: their content is already in the current version
    index_dir: str
    history: list[dict[str, Any]] = field(default_factory=list)
    committed_segments: list[str] | None = None  # index segments of committed versions; None: unknown


def delta_stages() -> list[str]:
    """The corpus stages run per delta: every corpus stage from ingest on, except mix."""
    after_ingest = dag.downstream("ingest")
    return [s for s in dag.FLOWS["corpus"] if s in after_ingest and s != "mix"]


def expand_inputs(paths: list[str]) -> list[str]:
    """Files stay as given; a directory becomes its raw files (sorted, not recursive, see module doc)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(raw_files_in(p))
        else:
            out.append(os.path.abspath(p) if "://" not in p else p)
    return out


def incremental_inputs(flow: str, from_artifact: str | None, inputs: list[str] | None) -> list[str] | None:
    """Check an ``--incremental`` request; the expanded input files, or None for the preset's inputs."""
    if flow != "corpus":
        raise UserError(f"--incremental refreshes the corpus flow, not '{flow}': lmpipe run corpus --incremental")
    if from_artifact:
        raise UserError("--incremental starts from the current corpus version (refs/corpus); drop --from")
    return expand_inputs(inputs) if inputs else None


def default_index_dir(store: ArtifactStore) -> str:
    if not store.is_local:
        raise UserError(f"--incremental on a remote store ({store.url}) needs a local dedup index: "
                        "--set dedup.index_dir=/shared/path/index")
    return f"{store.url}/index/dedup"


def plan(store: ArtifactStore, cfg: PipelineConfig, files: list[str]) -> Plan:
    """Which of ``files`` are new relative to the current corpus version."""
    ref = store.read_ref(REF)
    index_dir = cfg.dedup.index_dir or default_index_dir(store)
    if ref is None:
        previous, version, deltas, covered_sha = None, 1, [], set()
        # Before the first version, segments in the store's own index can only come from a refresh that died
        # before it committed; a user-given index_dir may hold an index built on purpose: keep that one.
        committed = [] if not cfg.dedup.index_dir else None
    else:
        previous = ref["id"]
        try:
            prev = store.get(previous)
        except ArtifactNotFound:
            raise UserError(f"{store.ref_path(REF)} names {previous}, which is not in the store; restore it, or "
                            "delete that ref to start a new version history") from None
        version = int(ref.get("version", 0)) + 1
        deltas = [p for p in prev.parents if not p.startswith("mix-")]
        # Raw inputs of ingest only: other stages' files (the quality model's reference texts) are not corpus input.
        covered_sha = {i["sha256"] for m in store.ancestors(previous) if m.kind == "ingest" for i in m.inputs}
        committed = ref.get("index_segments")
    new, covered = [], []
    for f in files:
        digest = sha256_file(f)
        (covered if digest in covered_sha else new).append(f)
        covered_sha.add(digest)  # the same content twice in one batch: processed once
    return Plan(previous, version, deltas, new, covered, index_dir, list(ref.get("history", [])) if ref else [],
                committed)


def _segments(index_dir: str) -> list[Path]:
    """The index's segment directories (``curation.dedup.DedupIndex`` layout: ``seg-<batch digest>/``)."""
    return sorted(s for s in Path(index_dir).glob("seg-*") if s.is_dir())


def _segment_names(index_dir: str) -> list[str]:
    """The segment directories and, for compacted ones, the ``seg-<batch>`` names of the batches merged in."""
    from curation.dedup import segment_batches

    names = []
    for s in _segments(index_dir):
        names += [s.name, *(f"seg-{b}" for b in segment_batches(s) if f"seg-{b}" != s.name)]
    return names


def drop_uncommitted_segments(p: Plan) -> list[str]:
    """Remove index segments added by a refresh that died before its version was committed.

    Why: a segment is named by its batch; if the retry's batch differs (new files arrived meanwhile), the dead
    refresh's documents would be matched against their own segment and dropped as duplicates of themselves.
    Removing the segment (and recomputing the delta's dedup, which adds it back) keeps the index equal to
    what committed versions hold.
    """
    if p.committed_segments is None:
        return []
    from curation.dedup import segment_batches

    committed = set(p.committed_segments)
    # A compacted segment is committed when every batch merged into it was.
    stale = [s for s in _segments(p.index_dir)
             if s.name not in committed and not {f"seg-{b}" for b in segment_batches(s)} <= committed]
    for s in stale:
        shutil.rmtree(s)
    return [s.name for s in stale]


def delta_config(cfg: PipelineConfig, p: Plan) -> PipelineConfig:
    """The config the delta stages run with: only the new files, the persistent dedup index."""
    return cfg.model_copy(update={"inputs": list(p.new_inputs),
                                  "dedup": cfg.dedup.model_copy(update={"index_dir": p.index_dir}),
                                  # a crawl's WARC files are among the new inputs already (run_incremental)
                                  "crawl": cfg.crawl.model_copy(update={"seeds": [], "seeds_file": None})})


def stage_overrides(c: PipelineConfig) -> dict[str, Any]:
    """The ``--set`` keys by which a delta config differs from the user's (for Prefect tasks, which re-resolve
    the config from preset + overrides + inputs)."""
    return {"dedup.index_dir": c.dedup.index_dir, "crawl.seeds": list(c.crawl.seeds),
            "crawl.seeds_file": c.crawl.seeds_file}


def build_version(store: ArtifactStore, cfg: PipelineConfig, p: Plan, delta: str,
                  flow_run_id: str | None = None) -> tuple[Manifest, bool]:
    """The new version: mix over every delta's documents; parents = every delta + the previous version."""
    qualities = [*p.deltas, delta]
    parents = [*qualities, *([p.previous] if p.previous else [])]
    conf = cfg.mix.model_dump(mode="json")

    def fn(out: Path) -> dict[str, Any]:
        # A page seen again unchanged (same id as a document of an earlier delta) never reaches here: the delta's
        # dedup stage matches it against the persistent index and drops it.
        inputs = [f for q in qualities for f in store.get(q).file_paths(".parquet")]
        stats = dag.mix_with_report(inputs, out, cfg, store, {dag.STAGES["mix"].parents[0]: delta})
        stats["version"] = {"number": p.version, "previous": p.previous, "deltas": len(qualities),
                            "new_inputs": [os.path.basename(f) for f in p.new_inputs]}
        return stats

    return store.build("mix", dag.STAGES["mix"].version, conf, parents, fn, flow_run_id=flow_run_id)


def commit(store: ArtifactStore, p: Plan, version_id: str) -> dict[str, Any]:
    """Move ``refs/corpus`` to the new version (atomic); returns the ref written."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    entry = {"version": p.version, "id": version_id, "new_inputs": len(p.new_inputs), "created_at": now}
    ref = {"id": version_id, "version": p.version, "previous": p.previous, "updated_at": now,
           "history": [*p.history, entry], "index_segments": _segment_names(p.index_dir)}
    store.write_ref(REF, ref)
    return ref


@contextlib.contextmanager
def refresh_lock(store: ArtifactStore) -> Iterator[None]:
    """One refresh at a time per local store; a second one waits (queued, never interleaved)."""
    if not store.is_local:
        yield
        return
    import fcntl

    path = Path(store.ref_path(REF)).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"lmpipe: another corpus refresh holds {path}; waiting for it to finish", file=sys.stderr,
                  flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_incremental(store: ArtifactStore, cfg: PipelineConfig, files: list[str], run_stage: StageRunner,
                    refresh: list[str] | None = None, flow_run_id: str | None = None,
                    on_version: Callable[[Manifest, bool], None] | None = None) -> dict[str, Any]:
    """One refresh (see the module doc). Returns ``{stage: {"id", "built", "seconds"}, "refresh": summary}``.

    ``summary["status"]`` is ``"new_version"`` or ``"nothing_new"`` (then ``mix`` is the current version,
    marked ``given``, or absent when there is none).
    """
    force = dag.expand_refresh(refresh)
    with refresh_lock(store):
        crawled: dict[str, Any] = {}
        if dag.crawl_enabled(cfg):  # the crawl stage (skipped when its id is complete); its WARCs are candidates
            crawled = run_stage(dag.CRAWL.name, cfg, {}, dag.CRAWL.name in force)
            crawl = store.get(crawled["id"])
            files = [*files, *(str(store.local_dir(crawl.id) / f["path"]) for f in crawl.files
                               if f["path"].endswith(".warc.gz"))]
        p = plan(store, cfg, files)
        summary: dict[str, Any] = {"previous": p.previous, "new_inputs": p.new_inputs, "covered": len(p.covered),
                                   "index_dir": p.index_dir}
        if not p.new_inputs:
            summary.update(status="nothing_new", version=p.version - 1)
            results: dict[str, Any] = {"refresh": summary, **({dag.CRAWL.name: crawled} if crawled else {})}
            if p.previous:
                results["mix"] = {"id": p.previous, "built": False, "seconds": 0.0, "given": True}
            return results
        if drop_uncommitted_segments(p):
            force |= dag.downstream("dedup")  # recompute the delta's dedup so that it adds its segment again
        dcfg = delta_config(cfg, p)
        ids: dict[str, str] = {}
        results = {dag.CRAWL.name: crawled} if crawled else {}
        # Stages whose output must stay the same across versions are taken from the previous version.
        before = dag.known_from(store, p.previous) if p.previous else {}
        for name in delta_stages():
            if name in SHARED_ACROSS_VERSIONS and name in before and name not in force:
                results[name] = {"id": before[name], "built": False, "seconds": 0.0, "given": True}
            else:
                results[name] = run_stage(name, dcfg, dict(ids), name in force)
            ids[name] = results[name]["id"]
        m, built = build_version(store, dcfg, p, ids[delta_stages()[-1]], flow_run_id)
        if on_version:
            on_version(m, built)
        commit(store, p, m.id)
        # Merge index segments once their number passes a bound (only committed ones exist now: the lock is held),
        # so that the next refresh looks up a bounded number of segments (curation.dedup.DedupIndex.compact).
        from curation.dedup import compact_index

        summary["index_compacted"] = compact_index(p.index_dir)
        results["mix"] = {"id": m.id, "built": built, "seconds": m.seconds}
        summary.update(status="new_version", version=p.version)
        results["refresh"] = summary
        return results


def run_plain(cfg: PipelineConfig, store: ArtifactStore, files: list[str],
              refresh: list[str] | None = None) -> dict[str, Any]:
    """The ``--no-prefect`` refresh: stages as plain function calls."""
    store.clean_tmp()

    def stage(name: str, dcfg: PipelineConfig, ids: dict[str, str], force: bool) -> dict[str, Any]:
        m, built = dag.run_stage(name, dcfg, store, ids, force)
        return {"id": m.id, "built": built, "seconds": m.seconds}

    return run_incremental(store, cfg, files, stage, refresh)


def describe(summary: dict[str, Any]) -> str:
    """One line for the CLI and the logs."""
    if summary["status"] == "nothing_new":
        if not summary["previous"]:
            return "nothing new: no input file found and no corpus version yet; no stage ran"
        return (f"nothing new: {summary['covered']} input file(s), all already in version {summary['version']} "
                f"({summary['previous']}); no stage ran, no new version")
    names = ", ".join(os.path.basename(f) for f in summary["new_inputs"])
    prev = f", previous {summary['previous']}" if summary["previous"] else ""
    return (f"corpus version {summary['version']}{prev}: processed {len(summary['new_inputs'])} new file(s) "
            f"({names}); {summary['covered']} already covered")
