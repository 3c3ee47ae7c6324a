"""Multi-node pretraining on this machine: two torchrun "nodes" (one gloo process each) on 127.0.0.1, joined
through torchrun's static rendezvous exactly as on a cluster (model/launch.py), against one node running
the same global batch; an exact resume across the two nodes; the launch options, the config's id and the
shard check. Synthetic token shards: no data files needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.config import PretrainConfig
from model.launch import join_command, node0_launch, shards_fingerprint, torchrun_args
from test_model import write_shards

REPO = Path(__file__).resolve().parents[1]
# Global batch 8 windows of 32 tokens: 2 ranks x 4, on one node (nproc 2) or on two nodes (nproc 1 each).
CFG = dict(depth=1, seq_len=32, batch_size=4, steps=10, warmup_steps=2, eval_every=5, eval_batches=2, device="cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)

    def doc() -> list[int]:
        n, start = int(rng.integers(20, 80)), int(rng.integers(3, 50))
        return [3 + (start + 7 * i) % 90 for i in range(n)]

    root = tmp_path_factory.mktemp("shards")
    return write_shards(root, {"train": [[doc() for _ in range(100)], [doc() for _ in range(60)]],
                               "val": [[doc() for _ in range(30)]]})


def free_port() -> int:
    """A port the OS just handed out. Node 0's torchrun must bind a port named in advance (every node dials
    it), so unlike --standalone (port 0, chosen by the OS at bind time) there is a short window in which
    another process could take it; tests on a shared machine accept that."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def two_nodes(
    out: Path, shards: Path, *extra: str, node1_tokens: Path | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Node 0 with the run's arguments, node 1 joining with `python -m model.launch` (no paths, no config),
    both started at once like two Slurm tasks; returns both finished processes."""
    endpoint = f"127.0.0.1:{free_port()}"
    cfg = {**CFG, "nproc": 1, "nnodes": 2}
    node0 = [sys.executable, "-m", "torch.distributed.run",
             *torchrun_args(1, 2, 0, endpoint), "-m", "model.pretrain",
             "--tokens", str(shards), "--out", str(out), "--config", json.dumps(cfg), *extra]
    node1 = [sys.executable, "-m", "model.launch", "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", endpoint]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env())
             for cmd in (node0, node1)]
    try:
        done = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
        return done
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def dag_node0(out: Path, shards: Path, *extra: str) -> dict[str, Any]:
    """Node 0 through the DAG's launcher (its torchrun options come from node0_launch), node 1 joining."""
    from flows.dag import _run_subprocess

    endpoint = f"127.0.0.1:{free_port()}"
    cfg = PretrainConfig(**{**CFG, "nproc": 1, "nnodes": 2, "rdzv_endpoint": endpoint})  # type: ignore[arg-type]
    node1 = subprocess.Popen([sys.executable, "-m", "model.launch", "--nnodes", "2", "--node-rank", "1",
                              "--rdzv-endpoint", endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=REPO, env=env())
    try:
        stats = _run_subprocess("model.pretrain", ["--tokens", str(shards), "--out", str(out), "--config",
                                                   json.dumps(cfg.model_dump(mode="json")), *extra],
                                nproc=1, torchrun=node0_launch(cfg))
        assert node1.wait(timeout=120) == 0, node1.communicate()[1][-2000:]
        return stats
    finally:
        if node1.poll() is None:
            node1.kill()
        node1.communicate()


def one_node(out: Path, shards: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun_args(2), "-m", "model.pretrain",
           "--tokens", str(shards), "--out", str(out), "--config", json.dumps({**CFG, "nproc": 2})]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_launch_options_and_join_command() -> None:
    assert torchrun_args(1) == []
    assert torchrun_args(4) == ["--standalone", "--nproc-per-node=4"]
    assert torchrun_args(8, 2, 1, "node001:29500") == [
        "--nnodes=2", "--node-rank=1", "--nproc-per-node=8", "--rdzv-backend=static",
        "--rdzv-endpoint=node001:29500", "--rdzv-id=lmpipe-pretrain"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        torchrun_args(1, 2, 0, None)
    cfg = PretrainConfig(nnodes=2, nproc=8, rdzv_endpoint="node001:29500")
    assert node0_launch(cfg)[:2] == ["--nnodes=2", "--node-rank=0"]
    assert join_command(8, 2, "node001:29500", 1) == (
        "python -m model.launch --nnodes 2 --node-rank 1 --nproc-per-node 8 --rdzv-endpoint node001:29500")
    with pytest.raises(ValueError, match="--node-rank 1"):  # the DAG refuses to be node 1 and says what to run
        node0_launch(PretrainConfig(nnodes=2, node_rank=1, rdzv_endpoint="node001:29500"))
    with pytest.raises(ValueError, match="node_rank"):
        PretrainConfig(nnodes=2, node_rank=2)


def test_node_facts_stay_out_of_the_artifact_id() -> None:
    """nnodes changes the global batch, so it is in the id; where a node sits is not. A one-node config
    serialises as it did before the fields existed, so earlier single-node pretrain ids stay valid."""
    single = PretrainConfig().model_dump(mode="json")
    assert not {"nnodes", "node_rank", "rdzv_endpoint"} & set(single)
    a = PretrainConfig(nnodes=2, node_rank=0, rdzv_endpoint="a:1").model_dump(mode="json")
    b = PretrainConfig(nnodes=2, node_rank=1, rdzv_endpoint="b:2").model_dump(mode="json")
    assert a == b and a["nnodes"] == 2
    assert PretrainConfig.model_validate(a).nnodes == 2  # the dump is what the trainer is given


def test_cli_flags_and_deployment_set_the_pretrain_keys() -> None:
    import yaml

    from flows.cli import _overrides, build_parser
    from flows.config import resolve_config

    a = build_parser().parse_args(["run", "pretrain", "--nnodes", "2", "--node-rank", "0",
                                   "--rdzv-endpoint", "node001:29500", "--set", "pretrain.nproc=8"])
    cfg = resolve_config("tiny", _overrides(a)).pretrain
    assert (cfg.nnodes, cfg.node_rank, cfg.rdzv_endpoint, cfg.nproc) == (2, 0, "node001:29500", 8)
    deps = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    multi = deps["pretrain-multinode"]
    assert multi["entrypoint"].endswith(":pretrain_flow") and multi["work_pool"]["name"] == "gpu"
    assert resolve_config("tiny", multi["parameters"]["overrides"]).pretrain.nnodes == 2


def test_fingerprint_tells_shards_apart(shards: Path, tmp_path: Path) -> None:
    other = write_shards(tmp_path, {"train": [[[5, 6, 7] * 30]], "val": [[[5, 6] * 20]]})
    assert shards_fingerprint(shards) == shards_fingerprint(shards) != shards_fingerprint(other)


@pytest.mark.slow  # four torchrun launches, ~1-2 minutes on 2 loaded cores
def test_two_nodes_equal_one_node_and_resume_exactly_across_nodes(shards: Path, tmp_path: Path) -> None:
    single = one_node(tmp_path / "one", shards)

    node0, node1 = two_nodes(tmp_path / "two", shards)
    assert node0.returncode == 0 and node1.returncode == 0, (node0.stderr[-2000:], node1.stderr[-2000:])
    assert node1.stdout.strip() == ""  # only global rank 0 (on node 0) prints stats and writes files
    stats = json.loads(node0.stdout.strip().splitlines()[-1])
    assert stats["world_size"] == 2 and stats["train_tokens"] == CFG["steps"] * 8 * 32  # type: ignore[operator]
    # The same windows per step and the same gradient average: equal to the last bit the log keeps.
    assert [r["loss"] for r in rows(tmp_path / "two")] == [r["loss"] for r in rows(tmp_path / "one")]
    assert stats["final_loss"] == pytest.approx(single["final_loss"], abs=1e-6)
    assert stats["val_loss"] == pytest.approx(single["val_loss"], abs=1e-6)

    # Stopped after step 4 on two nodes, node 0 launched by the DAG's launcher (flows.dag._run_subprocess with
    # node0_launch, as the pretrain stage does); resumed on two nodes: node 1 gets the checkpoint path from rank 0.
    half = dag_node0(tmp_path / "half", shards, "--stop-after", "4")
    assert half["steps"] == 4 and not (tmp_path / "half" / "model.safetensors").exists()
    rest = two_nodes(tmp_path / "rest", shards, "--resume", str(tmp_path / "half" / "checkpoint"))
    assert all(p.returncode == 0 for p in rest), rest[0].stderr[-2000:]
    resumed = json.loads(rest[0].stdout.strip().splitlines()[-1])
    losses = [r["loss"] for r in rows(tmp_path / "half") + rows(tmp_path / "rest")]
    assert losses == [r["loss"] for r in rows(tmp_path / "two")]
    assert resumed["final_loss"] == pytest.approx(stats["final_loss"], abs=1e-6)


@pytest.mark.slow
def test_a_node_reading_other_shards_stops_every_rank(shards: Path, tmp_path: Path) -> None:
    """Node 1 joins with the arguments rank 0 sends, so it can only see other data when the 'same' path holds
    other files there; a rank started with its own arguments can. Simulated with a second node-0-style
    launch that points at other shards: both nodes must fail with the shard error, neither trains."""
    other = write_shards(tmp_path / "other", {"train": [[[5, 6, 7] * 40]], "val": [[[5, 6] * 30]]})
    endpoint = f"127.0.0.1:{free_port()}"
    cfg = json.dumps({**CFG, "nproc": 1, "nnodes": 2})
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *torchrun_args(1, 2, rank, endpoint), "-m", "model.pretrain",
         "--tokens", str(tokens), "--out", str(tmp_path / f"out{rank}"), "--config", cfg],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env())
        for rank, tokens in ((0, shards), (1, other))]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode != 0 for p in procs)
    assert all("not the token shards rank 0 reads" in e for e in errs), errs[0][-2000:]
    assert not (tmp_path / "out0" / "metrics.jsonl").exists()


FAKE_SRUN = """#!/usr/bin/env bash
# srun for two "nodes" on this machine: run the task once per node id, at once, and fail if either fails.
while [[ "$1" == --* ]]; do shift; done
SLURM_NODEID=0 "$@" & SLURM_NODEID=1 "$@" & wait -n || exit 1
wait -n || exit 1
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo 127.0.0.1
"""


@pytest.mark.slow  # the tiny corpus and tokenizer flows, then 2 "nodes" training (~3 minutes on 2 loaded cores)
def test_sbatch_script_trains_on_two_nodes_with_the_dag_on_node_0(tmp_path: Path) -> None:
    """scripts/pretrain.sbatch as Slurm runs it, with `srun` and `scontrol` stand-ins that start the task as
    node 0 and node 1 on 127.0.0.1: node 0's DAG builds the pretrain artifact, node 1 joins it."""
    home = tmp_path / "home"
    base = {**os.environ, "LMPIPE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    base.pop("PREFECT_API_URL", None)
    lmpipe = [sys.executable, "-m", "flows.cli"]
    subprocess.run([*lmpipe, "run", "corpus", "--preset", "tiny", "--no-prefect"], cwd=REPO, env=base, check=True,
                   capture_output=True, timeout=600)
    (mix,) = [p.name for p in (home / "mix").iterdir()]
    subprocess.run([*lmpipe, "run", "tokenizer", "--preset", "tiny", "--no-prefect", "--from", mix], cwd=REPO,
                   env=base, check=True, capture_output=True, timeout=600)
    (tokens,) = [p.name for p in (home / "tokens").iterdir()]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**base, "PATH": f"{bin_dir}{os.pathsep}{base['PATH']}", "TOKENS_ID": tokens, "GPUS_PER_NODE": "1",
           "RDZV_PORT": str(free_port()), "SLURM_JOB_NODELIST": "node[001-002]", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_SUBMIT_DIR": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "pretrain.sbatch"), "--preset", "tiny", "--no-prefect",
                           "--set", "pretrain.device=cpu"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (built,) = [p for p in (home / "pretrain").iterdir() if (p / "manifest.json").exists()]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["stats"]["world_size"] == 2 and manifest["config"]["nnodes"] == 2
    assert manifest["parents"] == [tokens] and (built / "model.safetensors").exists()
    assert "python -m model.launch --nnodes 2 --node-rank K" in proc.stderr  # the join command node 0 logs
