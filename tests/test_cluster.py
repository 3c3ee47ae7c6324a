"""The corpus flow on real clusters started by the tests: Ray (marker `ray`) and Slurm (marker `slurm`).

Ray: `ray start --head` plus a second node process (its own --num-cpus and temp dir) on this machine, the
artifact store on the shared filesystem; `lmpipe run corpus --executor ray` gives the same bytes as the local
run, its ranks land on both nodes, and a worker process killed mid-stage has its ranks resubmitted.
Slurm: Debian's slurm-wlm (slurmctld + slurmd on 127.0.0.1, munge) from scripts/slurm-local.sh; the same run
with `--executor slurm` (datatrove's job arrays) gives the same bytes.

Run: `pytest -m "ray or slurm"` (.ci/run does). Every process started here is stopped here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from storage.store import ArtifactStore
from test_scale import disturbed, make_inputs, outputs, run_cli, stage_stats, wait_for  # tests/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[str], Path]:
    """Four input shards and the local run's artifacts: what every cluster run must reproduce."""
    base = tmp_path_factory.mktemp("cluster")
    inputs = make_inputs(base / "inputs")
    proc = run_cli(base / "local", inputs, "--workers", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return inputs, base / "local"


# ---------------------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-node Ray cluster on this machine: a head and a worker node, one CPU each, own temp dirs."""
    pytest.importorskip("ray")
    ray = str(BIN / "ray")
    # Ray's socket paths must stay under 108 bytes: a short temp dir, not pytest's.
    root = Path(tempfile.mkdtemp(prefix="lmr-", dir="/tmp"))
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--temp-dir", str(root / "head"), "--include-dashboard=false", *common],
                       check=True, env=env, capture_output=True, timeout=180)
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        "--temp-dir", str(root / "worker"), *common],
                       check=True, env=env, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        # `ray stop` stops every Ray process of this machine: the tests start the only cluster here.
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _ray_nodes_of(home: Path, stage: str) -> set[str]:
    (m,) = ArtifactStore(home).list(stage)
    nodes = set()
    for log in (Path(m.path) / "logs" / stage / "logs").glob("task_*.log"):
        nodes |= set(re.findall(r"\(Ray node ([0-9a-f]+)\)", log.read_text()))
    return nodes


@pytest.mark.ray
def test_ray_cluster_gives_the_local_bytes_on_both_nodes(ray_cluster, corpus, tmp_path: Path) -> None:
    inputs, local = corpus
    proc = run_cli(tmp_path, inputs, "--executor", "ray", "--ray-address", ray_cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs(tmp_path) == outputs(local)  # (paths hold the artifact ids: the same ids too)
    assert stage_stats(tmp_path, "langid")["execution"]["executor"] == "ray"
    assert len(_ray_nodes_of(tmp_path, "langid") | _ray_nodes_of(tmp_path, "filter")) == 2


@pytest.mark.ray
def test_ray_worker_killed_mid_stage_is_resubmitted(ray_cluster, corpus, tmp_path: Path) -> None:
    inputs, local = corpus
    proc = run_cli(tmp_path, inputs, "--executor", "ray", "--ray-address", ray_cluster, wait=False)
    started = lambda: sorted(tmp_path.glob("filter/.tmp-filter-*/scratch/filter/started/*.json"))  # noqa: E731
    def kill_worker() -> None:
        child = json.loads(wait_for(started, timeout=300)[0].read_text())["pid"]
        # datatrove's Ray task runs the rank in a pool child of the actor's worker process: kill both, as a
        # crash of the worker (or an OOM kill of its process tree) would.
        for pid in (_ancestors(child)[0], child):
            os.kill(pid, signal.SIGKILL)

    out = disturbed(proc, kill_worker)
    assert proc.returncode == 0, out
    assert outputs(tmp_path) == outputs(local)
    # datatrove's Ray executor saw the crash and resubmitted the ranks (its warning reaches our stderr)
    assert re.search(r"failed with (retriable error \w+|RayActorError)", out), out[-3000:]


# ---------------------------------------------------------------------------------------------- Slurm


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("slurmd must run as root")
    root = Path(tempfile.mkdtemp(prefix="lms-", dir="/tmp"))
    env = {**os.environ, "SLURM_LOCAL_DIR": str(root), "SLURM_LOCAL_CTLD_PORT": str(_free_port()),
           "SLURM_LOCAL_SLURMD_PORT": str(_free_port())}
    script = str(REPO / "scripts" / "slurm-local.sh")
    try:
        proc = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode == 3:
            pytest.skip(f"Slurm not installable here: {proc.stderr.strip()}")
        assert proc.returncode == 0, proc.stderr
        conf = re.search(r"export SLURM_CONF=(\S+)", proc.stdout).group(1)
        yield {"SLURM_CONF": conf}
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slurm
def test_slurm_cluster_gives_the_local_bytes(slurm_cluster, corpus, tmp_path: Path, monkeypatch) -> None:
    inputs, local = corpus
    for k, v in slurm_cluster.items():
        monkeypatch.setenv(k, v)
    proc = run_cli(tmp_path, inputs, "--executor", "slurm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs(tmp_path) == outputs(local)
    stats = stage_stats(tmp_path, "langid")
    assert stats["execution"]["executor"] == "slurm" and stats["shards"]["total"] == 4
    (m,) = ArtifactStore(tmp_path).list("langid")
    assert list((Path(m.path) / "logs" / "langid" / "slurm_logs").glob("*.out"))  # sbatch's own output files


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            break
        chain.append(pid)
    return chain


def _descendants(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            child = int(stat.parent.name)
            kids += [child, *_descendants(child)]
    return kids


@pytest.mark.ray
def test_ray_node_lost_mid_stage_costs_only_its_ranks(ray_cluster, corpus, tmp_path: Path) -> None:
    """A third node joins, takes some ranks, and is lost (its raylet and every process under it killed): the
    run completes on the other nodes with the local bytes."""
    inputs, local = corpus
    node_dir = Path(tempfile.mkdtemp(prefix="lmr3-", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    subprocess.run([str(BIN / "ray"), "start", "--address", ray_cluster, "--node-ip-address", "127.0.0.1",
                    "--temp-dir", str(node_dir), "--num-cpus", "2", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    raylets = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
               if str(node_dir) in p.read_bytes().decode(errors="replace") and b"raylet" in p.read_bytes()]
    raylet = min(raylets)
    proc = run_cli(tmp_path, inputs, "--executor", "ray", "--ray-address", ray_cluster, wait=False)

    def rank_on_the_node() -> bool:
        for f in tmp_path.glob("*/.tmp-*/scratch/**/started/*.json"):
            pid = json.loads(f.read_text())["pid"]
            if raylet in _ancestors(pid) and not (f.parent.parent / "stats" / f.name).exists():
                return True
        return False

    def lose_the_node() -> None:
        wait_for(rank_on_the_node, timeout=300)
        victims = [raylet, *_descendants(raylet)] + [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
                                                    if str(node_dir) in p.read_bytes().decode(errors="replace")]
        for pid in dict.fromkeys(victims):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    try:
        out = disturbed(proc, lose_the_node)
    finally:
        shutil.rmtree(node_dir, ignore_errors=True)
    assert proc.returncode == 0, out[-5000:]
    assert outputs(tmp_path) == outputs(local)
