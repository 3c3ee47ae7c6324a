"""The one place where curation stages meet a distributed engine: datatrove's executors run a stage's shards.

A sharded stage is a plain function ``fn(rank) -> stats`` over one shard (``curation.stages``); this module runs
it for ranks 0..N-1 through datatrove 0.10.1's ``LocalPipelineExecutor`` (all cores of this machine),
``RayPipelineExecutor`` (a running Ray cluster, ``ray start``) or ``SlurmPipelineExecutor`` (sbatch job arrays),
with what those engines bring: a completion marker per rank (a rerun runs only the missing ranks), a log and a
stats file per rank under ``<logging_dir>/{logs,stats,completions}``, Ray placement groups and resubmission.

What is ours: the rank body (`ShardTask`, a datatrove ``PipelineStep`` that calls the function and writes its
stats), retries for the local executor (datatrove's own pool hangs when a worker is killed; ours notices the
dead process, reruns the rank once and then fails naming the shard and its log), and the progress display.

The number of shards is fixed by the data (one per raw input file), never by ``workers``: outputs are the
same whatever the executor and worker count, which are execution settings outside the artifact ids.

    from flows.executor import ExecutionConfig, run_shards
    stats = run_shards("langid", functools.partial(step, ...), tasks=5, state_dir=work / "scratch/langid",
                       logging_dir=work / "logs/langid", execution=ExecutionConfig(workers=2))
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Literal

from datatrove.pipeline.base import PipelineStep
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

ProgressFn = Callable[[dict[str, Any]], None]


def default_workers() -> int:
    """All the cores this process may use (the CPU affinity mask, e.g. a Slurm or container limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ExecutionConfig(BaseModel):
    """How stages run: engine, parallelism, cluster settings. Not part of any artifact id: the outputs are the
    same for every value here (tests/test_scale.py checks workers 1 / 2 / Ray byte for byte)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: Literal["local", "ray", "slurm"] = Field("local", description="local processes, a Ray cluster or Slurm")
    workers: int = Field(0, ge=0, description="Shards run at once (0 = all cores of this machine).")
    retries: int = Field(1, ge=0, description="Reruns of a shard whose process died or raised, before the stage fails.")
    ray_address: str | None = Field(None, description="Ray cluster address (None: RAY_ADDRESS, else 'auto').")
    ray_mem_per_task_gb: float = Field(1.0, gt=0, description="Memory Ray reserves for each shard task.")
    slurm_partition: str | None = Field(None, description="Slurm partition (None: the cluster's default).")
    slurm_time: str = Field("4:00:00", description="Slurm time limit per job.")
    slurm_cpus_per_task: int = Field(1, ge=1, description="CPUs per Slurm task.")
    slurm_mem_per_cpu_gb: int = Field(1, ge=1, description="Memory per CPU requested from Slurm, in GB.")
    slurm_sbatch_args: dict[str, str] = Field(default_factory=dict, description="Extra sbatch options.")
    progress: bool = Field(True, description="Progress bar on stderr (shards, documents, docs/s, ETA).")

    @property
    def resolved_workers(self) -> int:
        return self.workers or default_workers()


class ShardFailed(RuntimeError):
    """A shard failed on every try: the message names the shard and its log file."""


# ------------------------------------------------------------------------------------------ the rank body


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(data))
    os.replace(part, path)


class ShardTask(PipelineStep):
    """One rank = one shard: ``fn(rank)`` writes the shard's outputs; its stats go to ``state_dir``.

    ``fn`` must be picklable (a ``functools.partial`` of a module-level function): the local pool, Ray and
    Slurm all carry the executor, and this step in it, to other processes.
    """

    name = "lmpipe shard"
    type = "lmpipe"

    def __init__(self, label: str, fn: Callable[[int], dict[str, Any]], state_dir: str) -> None:
        super().__init__()
        self.label, self.fn, self.state_dir = label, fn, state_dir

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> None:
        from curation import stages

        state = Path(self.state_dir)
        where = {"pid": os.getpid(), "host": os.uname().nodename, "node": _ray_node_id(), "time": time.time()}
        _write_json(state / "started" / f"{rank:05d}.json", where)
        logger.info(f"{self.label} shard {rank}: pid {where['pid']} on {where['host']} (Ray node {where['node']})")
        last = [0.0]

        def tick(docs: int) -> None:  # documents done so far in this shard, on disk at most every 0.5 s
            now = time.monotonic()
            if now - last[0] >= 0.5:
                last[0] = now
                _write_json(state / "progress" / f"{rank:05d}.json", {"docs": docs})

        stages.set_progress_hook(tick)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            with self.track_time():
                stats = self.fn(rank) or {}
        finally:
            stages.set_progress_hook(None)
        stats.setdefault("shard_seconds", round(time.perf_counter() - start, 3))
        stats.setdefault("shard_cpu_seconds", round(time.process_time() - cpu, 3))
        for key in ("docs_in", "docs_out"):
            if isinstance(stats.get(key), int):
                self.stat_update(key, value=stats[key])
        _write_json(state / "stats" / f"{rank:05d}.json", stats)
        return None


def _ray_node_id() -> str | None:
    """The Ray node this process runs on, when it is a Ray worker (None otherwise)."""
    if "ray" not in sys.modules:
        return None
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


# ------------------------------------------------------------------------------------------ local executor

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()
PRELOAD = ("flows.executor", "curation.stages", "curation.extract", "curation.readers", "curation.langid",
           "curation.filters", "curation.dedup", "curation.quality", "pyarrow.parquet")


def _pool(workers: int) -> ProcessPoolExecutor:
    """One process pool per lmpipe process, reused by every stage: a new pool costs each worker ~1 s of imports
    (pyarrow, numpy, the stage modules) and the quality model load, per stage. forkserver, not fork: a process
    that ran a Prefect flow cannot fork healthy children (docs/LOG.md)."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:  # quality_model submits from its own thread while the shards run
        if _POOL is not None and _POOL_WORKERS != workers:
            shutdown_pool()
        if _POOL is not None and getattr(_POOL, "_broken", False):
            _discard_pool()  # a killed worker broke it: it takes no more work
        if _POOL is None:
            ctx = multiprocessing.get_context("forkserver")
            # Imported once in the fork server, inherited by every worker forked from it (0.8 s of imports per
            # worker otherwise). Only takes effect before the fork server's first start in this process.
            ctx.set_forkserver_preload(list(PRELOAD))
            _POOL = ProcessPoolExecutor(workers, mp_context=ctx)
            _POOL_WORKERS = workers
        return _POOL


def _noop() -> None:
    return None


def warm_pool(execution: ExecutionConfig) -> None:
    """Start the local pool in the background (the fork server's preload imports and the workers' start, ~1 s
    here) while the caller hashes inputs and plans, instead of on the first shard's submit, and import datatrove's
    executor module on the way (~0.4 s). A no-op for Ray, Slurm and one worker."""
    if execution.executor != "local" or execution.resolved_workers <= 1:
        return

    def start() -> None:
        import datatrove.executor  # noqa: F401 -- imported once here, off the caller's thread

        _pool(execution.resolved_workers).submit(_noop)

    threading.Thread(target=start, name="lmpipe-pool-start", daemon=True).start()


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def _discard_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None


atexit.register(shutdown_pool)


def run_off_process(fn: Callable[..., Any], *args: Any, execution: ExecutionConfig) -> Any:
    """``fn(*args)`` in one of the local pool's processes (with ``workers`` > 1; here otherwise): how a
    single-process stage (quality_model) runs beside the sharded ones without taking a core beyond the pool's."""
    if execution.executor != "local" or execution.resolved_workers <= 1:
        return fn(*args)
    for attempt in range(execution.retries + 1):
        try:
            return _pool(execution.resolved_workers).submit(fn, *args).result()
        except BrokenProcessPool:  # a pool process died (maybe a shard's, beside it): run it again
            if attempt == execution.retries:
                raise ShardFailed(f"{getattr(fn, '__name__', fn)}: its process died {attempt + 1} time(s) "
                                  "(killed or out of memory)") from None
    raise AssertionError("unreachable")


def _run_rank(executor: Any, rank: int) -> None:
    """Pool entry point: datatrove's ``_run_for_rank`` (log file, stats file, completion marker) for one rank."""
    executor._run_for_rank(rank, local_rank=1)  # local_rank != 0: the task logs go to its file, not the console


def _run_local(executor: Any, ranks: list[int], workers: int, pool_size: int, retries: int, state_dir: Path) -> int:
    """Run ``ranks`` of a datatrove executor on ``workers`` processes, rerunning a failed rank ``retries`` times.

    A killed worker breaks the whole pool (``BrokenProcessPool`` for every rank in flight); ranks that had not
    started yet are rerun without counting a try, ranks that had started count one. Returns the reruns.
    """
    tries: Counter[int] = Counter()
    errors: dict[int, str] = {}
    pending = list(ranks)
    while pending:
        failed: dict[int, str] = {}
        if workers <= 1:
            for rank in pending:
                try:
                    executor._run_for_rank(rank, local_rank=1)
                except Exception as e:  # noqa: BLE001 -- any error of a rank is retried, then reported
                    failed[rank] = f"{type(e).__name__}: {e}"
        else:
            failed = _run_in_pool(executor, pending, workers, pool_size, state_dir)
        for rank, why in failed.items():
            if why:
                tries[rank] += 1
                errors[rank] = why
            (state_dir / "started" / f"{rank:05d}.json").unlink(missing_ok=True)
        over = sorted(r for r in failed if tries[r] > retries)
        if over:
            raise ShardFailed(_failure_message(executor, over, errors, tries))
        pending = executor.get_incomplete_ranks(sorted(failed))
    return sum(tries.values())


def _run_in_pool(executor: Any, ranks: list[int], workers: int, pool_size: int, state_dir: Path) -> dict[int, str]:
    """One pass of ``ranks`` over the shared pool; returns ``{rank: error}`` for the ranks that did not complete
    (an empty error: the rank never started, so the try does not count).

    At most ``workers`` ranks are in the pool's queue at once, the next one submitted as one finishes: a job that
    runs beside the shards (``run_off_process``: quality_model, ~11 s on 4,000 pages) then takes the next free
    process instead of waiting behind every queued rank of the stage (it started ~2 s after the stage's first
    ranks before, and the stage after it waited for it)."""
    failed: dict[int, str] = {}
    queue = list(ranks)
    pool = _pool(pool_size)
    futures: dict[Future, int] = {}
    broken = False
    while queue or futures:
        while queue and len(futures) < workers and not broken:
            try:
                futures[pool.submit(_run_rank, executor, queue[0])] = queue[0]
                queue.pop(0)
            except BrokenProcessPool:  # broken by a process beside the shards (run_off_process)
                broken = True
        if not futures:
            break
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        for fut in done:
            rank = futures.pop(fut)
            try:
                fut.result()
            except BrokenProcessPool:
                broken = True  # the pool takes no more work: what is left goes to the next pass
                started = (state_dir / "started" / f"{rank:05d}.json").exists()
                failed[rank] = "its process died (killed or out of memory)" if started else ""
            except Exception as e:  # noqa: BLE001 -- any error of a rank is retried, then reported
                failed[rank] = f"{type(e).__name__}: {e}"
    failed.update({rank: "" for rank in queue})  # never submitted (the pool broke first)
    return failed


def _failure_message(executor: Any, ranks: list[int], errors: Mapping[int, str], tries: Mapping[int, int]) -> str:
    first = ranks[0]
    log = f"{executor.logging_dir.path}/logs/task_{first:05d}.log"
    more = f" (and {len(ranks) - 1} more shard(s): {ranks[1:6]})" if len(ranks) > 1 else ""
    return f"shard {first} failed {tries.get(first, 1)} time(s): {errors.get(first, '?')}{more}; its log: {log}"


# ------------------------------------------------------------------------------------------ Ray and Slurm


def _run_ray(executor_kwargs: dict[str, Any], execution: ExecutionConfig) -> Any:
    import ray
    from datatrove.executor import RayPipelineExecutor

    if not ray.is_initialized():
        address = execution.ray_address or os.environ.get("RAY_ADDRESS") or "auto"
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    # datatrove resubmits a rank whose worker crashed or whose node was lost (up to 3 times).
    executor = RayPipelineExecutor(**executor_kwargs, cpus_per_task=1,
                                   mem_per_cpu_gb=execution.ray_mem_per_task_gb, log_first=False)
    executor.run()
    return executor


def _run_slurm(executor_kwargs: dict[str, Any], execution: ExecutionConfig) -> Any:
    """Submit the ranks as a Slurm job array (datatrove), wait for it, resubmit failed ranks ``retries`` times."""
    from datatrove.executor import SlurmPipelineExecutor

    # datatrove's job runs `source <venv>/bin/activate` and then its `launch_pickled_pipeline` command: the
    # nodes need this same virtual environment at this same path (a shared filesystem, like the artifact store).
    executor = SlurmPipelineExecutor(
        **executor_kwargs, time=execution.slurm_time, partition=execution.slurm_partition or _slurm_default_partition(),
        cpus_per_task=execution.slurm_cpus_per_task, mem_per_cpu_gb=execution.slurm_mem_per_cpu_gb,
        job_name=f"lmpipe-{Path(str(executor_kwargs['logging_dir'])).name}",
        venv_path=str(Path(sys.executable).parent / "activate"), sbatch_args=dict(execution.slurm_sbatch_args),
        max_array_launch_parallel=True, requeue=True)
    for _ in range(execution.retries + 1):  # a rerun submits only the ranks without a completion marker
        executor.run()  # submits the job array and returns; wait until it has left the queue
        while executor.get_incomplete_ranks() and _slurm_job_alive(executor.job_id):
            time.sleep(1)
        if not executor.get_incomplete_ranks():
            break
        time.sleep(2)  # a just-finished job's marker may still be on its way over a shared filesystem
        if not executor.get_incomplete_ranks():
            break
    return executor


def _slurm_default_partition() -> str:
    import subprocess

    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True)
    names = out.stdout.split()
    if out.returncode != 0 or not names:
        raise RuntimeError(f"sinfo found no Slurm partition ({out.stderr.strip() or 'no output'}); is SLURM_CONF set "
                           "and slurmctld running? Or pass --slurm-partition")
    return next((n.rstrip("*") for n in names if n.endswith("*")), names[0])


def _slurm_job_alive(job_id: str | None) -> bool:
    import subprocess

    if not job_id:
        return False
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%i"], capture_output=True, text=True)
    return bool(out.stdout.strip())


# ------------------------------------------------------------------------------------------ progress


class _Progress:
    """Polls the ranks' state files: shards done, documents done, docs/s and ETA, on a tqdm bar and a callback."""

    def __init__(self, label: str, tasks: int, state_dir: Path, logging_dir: Path, show: bool,
                 callback: ProgressFn | None) -> None:
        self.label, self.tasks, self.state_dir, self.logging_dir = label, tasks, state_dir, logging_dir
        self.callback, self.start = callback, time.monotonic()
        self.skipped = len(self._completed())
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=tasks, initial=self.skipped, desc=label, unit="shard", file=sys.stderr,
                            leave=False, dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _completed(self) -> set[str]:
        d = self.logging_dir / "completions"
        return {p.name for p in d.iterdir()} if d.is_dir() else set()

    def _docs(self) -> int:
        total = 0
        for sub in ("stats", "progress"):
            d = self.state_dir / sub
            names = sorted(d.glob("*.json")) if d.is_dir() else []
            for p in names:
                if sub == "progress" and (self.state_dir / "stats" / p.name).exists():
                    continue  # finished shards count from their stats
                try:
                    data = json.loads(p.read_text())
                except (OSError, ValueError):
                    continue
                total += int(data.get("docs_in", data.get("docs", 0)) or 0)
        return total

    def snapshot(self) -> dict[str, Any]:
        done = len(self._completed())
        elapsed = time.monotonic() - self.start
        run_done = done - self.skipped
        left = self.tasks - done
        eta = elapsed / run_done * left if run_done > 0 else None
        docs = self._docs()
        return {"stage": self.label, "shards_done": done, "shards": self.tasks, "docs": docs,
                "docs_per_s": round(docs / elapsed, 1) if elapsed > 0 else 0.0,
                "eta_s": round(eta, 1) if eta is not None else None,
                "fraction": done / self.tasks if self.tasks else 1.0}

    def _emit(self) -> None:
        snap = self.snapshot()
        if self.bar is not None:
            self.bar.n = snap["shards_done"]
            self.bar.set_postfix_str(f"{snap['docs']} docs, {snap['docs_per_s']:.0f} docs/s", refresh=True)
        if self.callback is not None:
            try:
                self.callback(snap)
            except Exception:  # noqa: BLE001 -- a UI update must never fail a stage
                pass

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._emit()

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._emit()
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------ entry point


def run_shards(label: str, fn: Callable[[int], dict[str, Any]], tasks: int, state_dir: Path, logging_dir: Path,
               execution: ExecutionConfig, progress: ProgressFn | None = None,
               sizes: list[int] | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Run ``fn(rank)`` for every rank in ``range(tasks)`` on the configured executor.

    ``state_dir`` and ``logging_dir`` must be deterministic for the artifact (and shared by all nodes): ranks
    with a completion marker there from an earlier, interrupted run are not run again. Returns the per-rank
    stats (rank order) and ``{"total", "run", "resumed"}`` shard counts.
    """
    if tasks <= 0:
        return [], {"total": 0, "run": 0, "resumed": 0, "retried": 0}
    state_dir.mkdir(parents=True, exist_ok=True)
    logging_dir.mkdir(parents=True, exist_ok=True)
    workers = min(execution.resolved_workers, tasks)
    task = ShardTask(label, fn, str(state_dir))
    kwargs: dict[str, Any] = {"pipeline": [task], "tasks": tasks, "workers": workers, "logging_dir": str(logging_dir)}
    _quiet_datatrove()
    retried = 0
    with _Progress(label, tasks, state_dir, logging_dir, execution.progress and sys.stderr.isatty(), progress) as bar:
        resumed = bar.skipped
        if execution.executor == "ray":
            executor = _run_ray({**kwargs, "workers": execution.workers or -1}, execution)
        elif execution.executor == "slurm":
            executor = _run_slurm({**kwargs, "workers": execution.workers or -1}, execution)
        else:
            from datatrove.executor import LocalPipelineExecutor

            executor = LocalPipelineExecutor(**kwargs, start_method="forkserver")
            ranks = executor.get_incomplete_ranks(range(tasks))
            if sizes is not None:
                ranks.sort(key=lambda r: -sizes[r])
            for r in ranks:  # a rank of an interrupted run that had started: not a try of this run
                (state_dir / "started" / f"{r:05d}.json").unlink(missing_ok=True)
            if ranks:
                executor.save_executor_as_json()
                retried = _run_local(executor, ranks, workers, execution.resolved_workers, execution.retries, state_dir)
    missing = executor.get_incomplete_ranks(range(tasks))
    if missing:
        reasons = {r: f"no completion marker after the {execution.executor} executor finished" for r in missing}
        raise ShardFailed(_failure_message(executor, missing, reasons, {}))
    stats = [json.loads((state_dir / "stats" / f"{r:05d}.json").read_text()) for r in range(tasks)]
    return stats, {"total": tasks, "run": tasks - resumed, "resumed": resumed, "retried": retried}


def _quiet_datatrove() -> None:
    """datatrove logs every rank's start and stats at INFO on stderr; keep warnings only on the console (each
    rank's full log is in its log file)."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


# ------------------------------------------------------------------------------------------ stats


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum per-shard stats: numbers add up, dicts merge recursively, other values keep the first shard's."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, bool) or key not in out:
                out.setdefault(key, value if not isinstance(value, Mapping) else merge_stats([value]))
            elif isinstance(value, (int, float)) and isinstance(out[key], (int, float)):
                out[key] = (round(out[key] + value, 6) if isinstance(value, float) or isinstance(out[key], float)
                            else out[key] + value)
            elif isinstance(value, Mapping) and isinstance(out[key], Mapping):
                out[key] = merge_stats([out[key], value])
    return out
