"""Sharded curation stages: the same bytes at any worker count, resume after a kill, a killed worker retried,
per-document errors dropped, leases (a live owner's build directory is never removed, a second run waits).

The Ray and Slurm clusters have their own tests (tests/test_cluster.py, markers `ray` and `slurm`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows import dag
from flows.config import resolve_config
from flows.executor import ExecutionConfig, ShardFailed, merge_stats, run_shards
from storage.store import ArtifactStore, Lease

REPO = Path(__file__).resolve().parents[1]
LMPIPE = [sys.executable, "-m", "flows.cli"]
CORPUS = ["ingest", "langid", "filter", "dedup", "quality", "mix"]


def make_inputs(directory: Path, files: int = 4, docs: int = 1200) -> list[str]:
    """JSONL files of real English text (the demo's C4 sample), each document made distinct by a prefix."""
    texts = [json.loads(line)["text"] for line in (REPO / "demo" / "text" / "en_c4.jsonl").open()]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        path = directory / f"part-{f}.jsonl"
        with path.open("w") as out:
            for i in range(docs):
                text = f"Record {f}-{i} of the archive. " + texts[(f * docs + i) % len(texts)]
                out.write(json.dumps({"id": f"{f}-{i}", "text": text}) + "\n")
        paths.append(str(path))
    return paths


def outputs(home: str | Path) -> dict[str, str]:
    """sha256 of every document file (kept and removed) of every complete artifact, by relative path."""
    found = {}
    for p in sorted(Path(home).glob("*/*/**/*.parquet")):
        rel = p.relative_to(home).as_posix()
        if "/." not in "/" + rel and "/logs/" not in rel:
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def run_cli(
    home: Path, inputs: list[str], *extra: str, wait: bool = True
) -> subprocess.Popen | subprocess.CompletedProcess:
    # quality_model copies the shipped scorer (positives=[]): training one is not what these tests are about
    cmd = [*LMPIPE, "--home", str(home), "run", "corpus", "--preset", "tiny", "--no-prefect", "--no-generate",
           "--set", "quality_model.positives=[]", *[a for p in inputs for a in ("--input", p)], *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if wait:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def disturbed(proc: subprocess.Popen, disturb, timeout: float = 900) -> str:
    """Call ``disturb()`` (kill something) while ``proc`` runs, then wait for it; returns its output. The run's
    process group is killed if it is still there at the end (a failed wait), so no test leaves it behind."""
    try:
        disturb()
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return out


def stage_stats(home: Path, kind: str) -> dict:
    (m,) = ArtifactStore(home).list(kind)
    return m.stats


def wait_for(predicate, timeout: float = 120.0, every: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[str], Path]:
    """The corpus flow at --workers 2 over 4 input shards: the bytes every other run must reproduce."""
    base = tmp_path_factory.mktemp("scale")
    inputs = make_inputs(base / "inputs")
    home = base / "reference"
    proc = run_cli(home, inputs, "--workers", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return inputs, home


def test_workers_one_and_two_give_the_same_bytes_and_ids(reference, tmp_path: Path) -> None:
    inputs, ref = reference
    cfg = resolve_config("tiny", {"execution.workers": 1, "quality_model.positives": []}, inputs)
    results = dag.run_flow_plain("corpus", cfg, ArtifactStore(tmp_path), None, None)
    ref_ids = {m.kind: m.id for m in ArtifactStore(ref).list()}
    assert {k: v["id"] for k, v in results.items()} == {k: ref_ids[k] for k in results}
    assert outputs(tmp_path) == outputs(ref)
    assert len([p for p in outputs(ref) if p.startswith("langid/") and "/docs-" in p]) == 4  # one per input file
    shards = stage_stats(ref, "langid")["shards"]
    assert shards == {"total": 4, "run": 4, "resumed": 0, "retried": 0}
    assert stage_stats(ref, "langid")["execution"] == {"executor": "local", "workers": 2}
    # the per-rank logs and stats of datatrove's executor are in the artifact
    (langid,) = ArtifactStore(ref).list("langid")
    assert (Path(langid.path) / "logs/langid/logs/task_00003.log").exists()
    assert (Path(langid.path) / "logs/langid/completions/00003").exists()


def test_a_stage_killed_after_k_shards_resumes_with_the_others(reference, tmp_path: Path) -> None:
    inputs, ref = reference
    proc = run_cli(tmp_path, inputs, "--workers", "1", wait=False)
    completions = lambda: list(tmp_path.glob("langid/.tmp-langid-*/logs/langid/completions/*"))  # noqa: E731
    try:
        wait_for(lambda: len(completions()) >= 1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = len(completions())
    assert done < 4, "the stage finished before it could be killed: make the input shards larger"
    assert ArtifactStore(tmp_path).list("langid") == []  # a killed build is never published, even in part
    again = run_cli(tmp_path, inputs, "--workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert stage_stats(tmp_path, "langid")["shards"] == {"total": 4, "run": 4 - done, "resumed": done, "retried": 0}
    assert outputs(tmp_path) == outputs(ref)
    assert not list(tmp_path.glob("*/.tmp-*")) and not list(tmp_path.glob("*/.lease-*"))


def test_a_killed_worker_process_has_its_shard_rerun(reference, tmp_path: Path) -> None:
    inputs, ref = reference
    proc = run_cli(tmp_path, inputs, "--workers", "2", wait=False)
    started = lambda: sorted(tmp_path.glob("langid/.tmp-langid-*/scratch/langid/started/*.json"))  # noqa: E731
    out = disturbed(proc, lambda: os.kill(json.loads(wait_for(started)[0].read_text())["pid"], signal.SIGKILL))
    assert proc.returncode == 0, out
    assert stage_stats(tmp_path, "langid")["shards"]["retried"] >= 1
    assert outputs(tmp_path) == outputs(ref)


# ---------------------------------------------------------------------------------------------- run_shards


def _raise_on(bad: int, rank: int) -> dict:
    if rank == bad:
        raise OSError(f"disk trouble on rank {rank}")
    return {"docs_in": rank}


def test_a_shard_that_fails_every_try_fails_the_stage_naming_it_and_its_log(tmp_path: Path) -> None:
    fn = functools.partial(_raise_on, 1)
    with pytest.raises(ShardFailed,
                       match=r"shard 1 failed 2 time\(s\): OSError: disk trouble on rank 1.*task_00001\.log"):
        run_shards("t", fn, 3, tmp_path / "state", tmp_path / "logs", ExecutionConfig(workers=1, retries=1))
    assert "disk trouble" in (tmp_path / "logs/logs/task_00001.log").read_text()
    # the shards that succeeded are complete: a rerun with the fault gone runs only shard 1
    stats, counts = run_shards("t", functools.partial(_raise_on, -1), 3, tmp_path / "state", tmp_path / "logs",
                               ExecutionConfig(workers=1))
    assert counts == {"total": 3, "run": 1, "resumed": 2, "retried": 0}
    assert [s["docs_in"] for s in stats] == [0, 1, 2]


def test_merge_stats_sums_numbers_and_nested_counts() -> None:
    merged = merge_stats([{"docs_in": 2, "dropped": {"a": 1}, "model": "x", "s": 0.5},
                          {"docs_in": 3, "dropped": {"a": 2, "b": 1}, "model": "y", "s": 0.25}])
    assert merged == {"docs_in": 5, "dropped": {"a": 3, "b": 1}, "model": "x", "s": 0.75}


def test_a_document_that_crashes_a_step_is_a_counted_drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation import langid, stages
    from curation.config import LangIdConfig
    from curation.documents import write_documents

    real = langid.identify

    def identify(text: str):
        if "poison" in text:
            raise UnicodeError("cannot handle this")
        return real(text)

    monkeypatch.setattr(langid, "identify", identify)
    rows = [{"id": str(i), "text": t} for i, t in enumerate(["This is an ordinary English sentence about cats.",
                                                             "poison pill", "Another ordinary sentence in English."])]
    write_documents(rows, tmp_path / "in.parquet")
    stats = stages.run_langid([tmp_path / "in.parquet"], tmp_path / "out", LangIdConfig(), shard=7)
    assert stats["dropped"] == {"error:UnicodeError": 1} and stats["docs_out"] == 2
    removed = pq.read_table(tmp_path / "out/removed/removed-00007.parquet").to_pylist()
    assert [r["drop_reason"] for r in removed] == ["error:UnicodeError"]


# ---------------------------------------------------------------------------------------------- leases


def test_clean_tmp_keeps_a_live_owners_build_and_resumable_ones(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    live, orphan = "pretrain-0123456789ab", "dedup-0123456789ab"
    for aid in (live, orphan):
        store.work_dir(aid).mkdir(parents=True)
    # a live owner on another host (fresh heartbeat): never removed
    store.lease_path(live).write_text(json.dumps({"host": "gpu_node", "pid": 1, "heartbeat": time.time(),
                                                  "started": time.time()}))
    legacy = tmp_path / "ingest" / ".tmp-ingest-0123456789ab-otherhost-123-abcd1234"
    legacy.mkdir(parents=True)
    assert store.clean_tmp() == 0
    assert store.work_dir(live).exists() and store.work_dir(orphan).exists() and legacy.exists()
    # the owner stopped beating long ago, and the build is old: now it goes
    store.lease_path(live).write_text(json.dumps({"host": "gpu_node", "pid": 1, "heartbeat": 0, "started": 0}))
    os.utime(store.work_dir(live), (0, 0))
    assert store.clean_tmp() == 1 and not store.work_dir(live).exists() and store.work_dir(orphan).exists()


def second_build_waits(home: str, lease_seen: Callable[[], object], env: dict[str, str] | None = None) -> None:
    """A build of `mix` held for 3 s by another process; a second build of the same id in this process waits on
    the lease (seen by `lease_seen`) and returns the first one's artifact without running its own function."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from storage.store import ArtifactStore\n"
        f"s = ArtifactStore({home!r})\n"
        "s.build('mix', '1', {}, [], "
        "lambda out: (time.sleep(3), (out / 'x').write_text('first'), {'by': 'first'})[2])\n"
    )], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    try:
        wait_for(lease_seen, timeout=60)
        calls = []
        m, built = ArtifactStore(home).build("mix", "1", {}, [], lambda out: calls.append(1) or {"by": "second"})
        assert not built and not calls and m.stats == {"by": "first"}
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0


def test_a_second_build_of_the_same_artifact_waits_for_the_first(tmp_path: Path) -> None:
    second_build_waits(str(tmp_path), lambda: list(tmp_path.glob("mix/.lease-*")))


def test_an_abandoned_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / ".lease-x-0123456789ab.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from storage.store import _hostname

    path.write_text(json.dumps({"host": _hostname(), "pid": int(dead.stdout), "heartbeat": time.time(),
                                "started": time.time()}))
    got = []

    def take() -> None:
        with Lease.acquire(path) as lease:
            got.append(lease)

    t = threading.Thread(target=take)
    t.start()
    t.join(timeout=30)
    assert got and got[0] is not None and got[0].pid == os.getpid()
    assert not path.exists()  # released at the end of the block
