"""The sharded curation stages of the DAG: which shards a stage has, and how its steps run over them.

Shards come from the data, never from the worker count: ``ingest`` has one shard per raw input file (WARC,
WET, JSONL, Parquet), and every later stage keeps its parent's shards (``docs-{rank:05d}.parquet``, dropped
documents in ``removed/removed-{rank:05d}.parquet``), so any executor and any ``--workers`` give the same
files byte for byte. ``langid``, ``filter`` and ``quality`` map shard i to shard i; ``dedup`` signs every shard
in parallel (signatures plus sorted runs), decides in parallel ranks that each read one key range of every shard's
runs (`curation.dedup_sharded`: memory per process bounded, no text read), then writes every shard in parallel.
``quality_model`` and ``mix`` read all shards in one process.

The per-shard functions are plain ``curation.stages`` calls; running them is ``flows.executor.run_shards``.
Each stage's build directory is deterministic (``ArtifactStore.work_dir``): a rerun after a kill skips the
shards that completed (``stats.shards.resumed``). Per-rank logs and stats are published in the artifact under
``logs/<step>/`` (datatrove's layout); intermediate files live in ``scratch/`` and are removed before publishing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

from flows.executor import ExecutionConfig, ProgressFn, merge_stats, run_shards

SHARDED = ("ingest", "langid", "filter", "dedup", "quality")


def _map_shard(
    stage: str, inputs: list[str], out_dir: str, cfg: Any, extra: tuple[Any, ...], rank: int
) -> dict[str, Any]:
    """Rank ``rank`` of a map stage: ``curation.stages.run_<stage>`` on input shard ``rank`` only."""
    from curation import stages

    fn = getattr(stages, f"run_{stage}")
    return fn([inputs[rank]], Path(out_dir), cfg, *extra, shard=rank)


def _dedup_sign(inputs: list[str], sig_dir: str, cfg: Any, rank: int) -> dict[str, Any]:
    from curation.stages import dedup_signatures

    return dedup_signatures([inputs[rank]], Path(sig_dir) / f"sig-{rank:05d}", cfg)


def _dedup_write(inputs: list[str], decisions_dir: str, out_dir: str, rank: int) -> dict[str, Any]:
    from curation.stages import dedup_write

    return dedup_write([inputs[rank]], Path(decisions_dir) / f"decisions-{rank:05d}.parquet", Path(out_dir), rank)


def _sizes(inputs: list[str]) -> list[int] | None:
    """Bytes of each input shard (local files), for largest-first scheduling; None when one is not a local file."""
    try:
        return [os.path.getsize(p) for p in inputs]
    except OSError:
        return None


def run_sharded(stage: str, inputs: list[str], out: Path, cfg: Any, execution: ExecutionConfig,
                progress: ProgressFn | None = None, extra: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Build stage ``stage`` into ``out`` from ``inputs`` (raw files for ingest, else the parent's shards in
    rank order); returns the stage's stats (per-shard stats summed, plus ``shards`` and ``execution``)."""
    start = time.perf_counter()
    if not inputs:
        raise ValueError(f"{stage}: no input shards (the parent artifact has no docs-*.parquet files)")
    scratch = out / "scratch"
    if stage == "dedup":
        stats = _run_dedup(inputs, out, scratch, cfg, execution, progress)
    else:
        fn = partial(_map_shard, stage, list(inputs), str(out), cfg, tuple(extra))
        parts, shards = run_shards(stage, fn, len(inputs), scratch / stage, out / "logs" / stage, execution, progress,
                                   _sizes(inputs))
        stats = merge_stats(parts)
        stats["shards"] = shards
        if stage == "quality":  # a mean is not a sum
            stats["mean_quality"] = (round(stats["quality_sum"] / stats["docs_out"], 4)
                                     if stats.get("docs_out") else None)
    shutil.rmtree(scratch, ignore_errors=True)
    stats["cpu_seconds"] = stats.pop("shard_cpu_seconds", None)
    stats.pop("shard_seconds", None)
    stats["seconds"] = round(time.perf_counter() - start, 3)
    stats["execution"] = {"executor": execution.executor, "workers": min(execution.resolved_workers, len(inputs))}
    return stats


def _run_dedup(inputs: list[str], out: Path, scratch: Path, cfg: Any, execution: ExecutionConfig,
               progress: ProgressFn | None) -> dict[str, Any]:
    from curation.dedup_sharded import MIN_RANKS
    from curation.stages import dedup_decide_sharded, merge_dedup_stats

    n = len(inputs)
    sig_dir, decisions_dir = scratch / "signatures", scratch / "decisions"
    signed, sign_shards = run_shards("dedup:signatures", partial(_dedup_sign, list(inputs), str(sig_dir), cfg), n,
                                     scratch / "sign-state", out / "logs" / "dedup-signatures", execution, progress,
                                     _sizes(inputs))
    decided_file = decisions_dir / "decided.json"
    if decided_file.exists():  # an interrupted run got past the decisions: reuse them
        decided = json.loads(decided_file.read_text())
    else:
        def ranks(label: str, fn: Any, tasks: int) -> list[dict[str, Any]]:
            parts, _ = run_shards(f"dedup:{label}", fn, tasks, scratch / f"{label}-state",
                                  out / "logs" / f"dedup-{label}", execution, progress)
            return parts

        decided = dedup_decide_sharded([sig_dir / f"sig-{r:05d}" for r in range(n)], decisions_dir, cfg, ranks,
                                       resign=partial(_dedup_sign, list(inputs), str(sig_dir), cfg),
                                       min_ranks=MIN_RANKS)
        decided_file.write_text(json.dumps(decided))
    written, write_shards = run_shards("dedup:write", partial(_dedup_write, list(inputs), str(decisions_dir), str(out)),
                                       n, scratch / "write-state", out / "logs" / "dedup-write", execution, progress,
                                       _sizes(inputs))
    stats = merge_dedup_stats(signed, decided, written, 0.0)
    stats["decide_seconds"] = decided["seconds"]
    stats["decide_ranks"] = decided["ranks"]
    stats["shard_cpu_seconds"] = round(sum(p.get("shard_cpu_seconds", 0.0) for p in signed + written), 3)
    stats["shards"] = {"signatures": sign_shards, "write": write_shards}
    return stats
