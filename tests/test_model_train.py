"""Training metrics (FLOPs, MFU, peak memory, TensorBoard) and data-parallel pretraining under
torchrun on CPU (gloo, 2 processes) on tiny synthetic token shards. No data files needed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model.config import GPTConfig, PretrainConfig
from model.data import BatchLoader
from model.pretrain import pretrain
from model.runtime import BF16_PEAK_FLOPS, device_peak_flops, flops_per_token
from test_model import write_shards

REPO = Path(__file__).resolve().parents[1]
TINY = dict(depth=1, seq_len=32, batch_size=8, steps=12, warmup_steps=2, eval_every=6, eval_batches=2, device="cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Documents of arithmetic token sequences (learnable: the loss falls fast)."""
    rng = np.random.default_rng(0)

    def doc() -> list[int]:
        n, start = int(rng.integers(20, 80)), int(rng.integers(3, 50))
        return [3 + (start + 7 * i) % 90 for i in range(n)]

    root = tmp_path_factory.mktemp("shards")
    return write_shards(root, {"train": [[doc() for _ in range(120)], [doc() for _ in range(80)]],
                               "val": [[doc() for _ in range(30)]]})


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_flops_per_token_counts_matmuls_and_attention() -> None:
    # 6 FLOPs per matmul weight per token, + 12 * layers * width * seq_len for scores and values.
    assert flops_per_token(1000, n_layer=2, n_embd=64, seq_len=128) == 6 * 1000 + 12 * 2 * 64 * 128
    # An untied input embedding is a lookup: no FLOPs.
    assert flops_per_token(1000, 2, 64, 128, embedding_params=400) == 6 * 600 + 12 * 2 * 64 * 128


def test_peak_flops_table_and_override() -> None:
    assert BF16_PEAK_FLOPS["H100"] == BF16_PEAK_FLOPS["H200"] == 989e12 and BF16_PEAK_FLOPS["A100"] == 312e12
    assert device_peak_flops(torch.device("cpu")) is None  # no MFU on CPU unless configured
    assert device_peak_flops(torch.device("cpu"), 1e12) == 1e12


def test_loader_ranks_take_disjoint_equal_slices(shards: Path) -> None:
    full = BatchLoader(shards, "train", 1, 32, seed=3)
    ranks = [BatchLoader(shards, "train", 1, 32, seed=3, rank=r, world_size=3) for r in range(3)]
    n = len(ranks[0])
    assert all(len(r) == n for r in ranks) and n == len(full) // 3
    seen = [[int(r._order[i]) for i in range(n)] for r in ranks]
    flat = [w for s in seen for w in s]
    assert len(set(flat)) == 3 * n  # disjoint, and together one (truncated) epoch of the 1-rank order
    assert sorted(flat) == sorted(full._order[: 3 * n].tolist())
    for r in ranks:
        for _ in range(n + 2):  # into the next epoch
            r.next_batch()
    state = ranks[0].state_dict()
    assert state["epoch"] == 1 and state["pos"] == 2
    assert state == ranks[1].state_dict() == ranks[2].state_dict()  # every rank's state is rank 0's
    with pytest.raises(ValueError, match="same nproc"):
        full.load_state_dict(state)
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(shards, "train", 1, 32, rank=2, world_size=2)


def test_pretrain_logs_flops_mfu_and_peak_memory(shards: Path, tmp_path: Path) -> None:
    stats = pretrain(shards, tmp_path / "a", PretrainConfig(**TINY))  # type: ignore[arg-type]
    assert stats is not None
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["flops_per_s"] > 0 and r["mfu"] is None and r["peak_mem_mb"] > 0 for r in rows)
    assert stats["flops_per_token"] > 6 * stats["params"] and stats["flops_per_s"] > 0
    assert stats["mfu"] is None and stats["peak_memory_bytes"] > 0 and stats["world_size"] == 1
    assert 0 < stats["loader_share"] < 0.5  # the loader's host time, a small part of each step
    has_tb = importlib.util.find_spec("tensorboard") is not None
    assert (stats["tensorboard"] is not None) == has_tb == (tmp_path / "a" / "tb").is_dir()

    cfg = PretrainConfig(**{**TINY, "steps": 3, "peak_flops": 1e12})  # type: ignore[arg-type]
    stats = pretrain(shards, tmp_path / "b", cfg)
    assert stats is not None and 0 < stats["mfu"] == pytest.approx(stats["flops_per_s"] / 1e12, rel=1e-2)


def test_nproc_without_torchrun_is_a_clear_error(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="torch.distributed.run"):
        pretrain(shards, tmp_path, PretrainConfig(**{**TINY, "nproc": 2}))  # type: ignore[arg-type]


def torchrun(nproc: int, out: Path, shards: Path, cfg: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "model.pretrain", "--tokens", str(shards), "--out", str(out), "--config", json.dumps(cfg), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_two_cpu_processes_equal_one_process_with_twice_the_batch_and_resume_exactly(
    shards: Path, tmp_path: Path
) -> None:
    """2 gloo ranks x batch 4 == 1 process x batch 8: the same windows per step, gradients averaged.
    And 2 ranks stopped half-way + resumed == 2 ranks straight through (rank 0's loader state is all ranks')."""
    from flows.dag import _run_subprocess

    ddp_cfg = {**TINY, "batch_size": 4, "nproc": 2}
    proc = torchrun(2, tmp_path / "ddp", shards, ddp_cfg)
    stdout = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(stdout) == 1  # only rank 0 prints stats
    stats = json.loads(stdout[0])
    assert stats["world_size"] == 2 and stats["train_tokens"] == TINY["steps"] * 8 * 32  # type: ignore[operator]
    assert {"model.safetensors", "metrics.jsonl", "loss.png"} <= {p.name for p in (tmp_path / "ddp").iterdir()}
    assert stats["final_loss"] < stats["first_loss"] - 1.0

    single = pretrain(shards, tmp_path / "one", PretrainConfig(**TINY))  # type: ignore[arg-type]
    assert single is not None
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "one"), abs=1e-3)
    assert stats["val_loss"] == pytest.approx(single["val_loss"], abs=1e-3)  # rank 0 scores the same val windows

    # The DAG's pretrain launcher: torchrun when nproc > 1; rank 0's stats line is parsed.
    half = _run_subprocess("model.pretrain", ["--tokens", str(shards), "--out", str(tmp_path / "half"),
                                              "--config", json.dumps(ddp_cfg), "--stop-after", "5"], nproc=2)
    assert half["steps"] == 5 and not (tmp_path / "half" / "model.safetensors").exists()
    torchrun(2, tmp_path / "rest", shards, ddp_cfg, "--resume", str(tmp_path / "half" / "checkpoint"))
    assert losses(tmp_path / "half") + losses(tmp_path / "rest") == losses(tmp_path / "ddp")


# --- training-loop features, on the CPU -------------------------------------------------------------------


def test_grad_accumulation_equals_the_larger_batch(shards: Path, tmp_path: Path) -> None:
    """2 micro-batches of 4 == 1 batch of 8: the loader hands out the same 8 windows, the loss is the mean."""
    base = {**TINY, "steps": 5, "eval_every": 100}
    pretrain(shards, tmp_path / "big", PretrainConfig(**base))  # type: ignore[arg-type]
    pretrain(shards, tmp_path / "acc", PretrainConfig(**{**base, "batch_size": 4, "grad_accum": 2}))  # type: ignore[arg-type]
    assert losses(tmp_path / "acc") == pytest.approx(losses(tmp_path / "big"), abs=1e-4)


def test_grad_clipping_bounds_the_update(shards: Path, tmp_path: Path) -> None:
    """Clipping the gradient to 1e-12 makes AdamW's update g / (|g| + eps) ~1e-4 of normal (eps 1e-8 dominates):
    the loss stays at its start, while the unclipped run learns; the logged grad norm is the pre-clip one."""
    base = {**TINY, "steps": 6, "eval_every": 100, "warmup_steps": 0}
    pretrain(shards, tmp_path / "free", PretrainConfig(**{**base, "grad_clip": 0}))  # type: ignore[arg-type]
    pretrain(shards, tmp_path / "clip", PretrainConfig(**{**base, "grad_clip": 1e-12}))  # type: ignore[arg-type]
    free, clip = losses(tmp_path / "free"), losses(tmp_path / "clip")
    assert free[0] == clip[0] and free[-1] < free[0] - 0.3
    assert abs(clip[-1] - clip[0]) < 0.02
    norms = [json.loads(line)["grad_norm"] for line in (tmp_path / "clip" / "metrics.jsonl").read_text().splitlines()]
    assert min(norms) > 1e-3  # measured before clipping


def test_bf16_autocast_trains_on_cpu(shards: Path, tmp_path: Path) -> None:
    """dtype='bfloat16' is the GPU default ('auto' on CUDA); forced on the CPU it runs the same code path:
    bf16 logits from the autocast region, fp32 master weights, a falling fp32 loss."""
    from model.gpt import GPT
    from model.runtime import autocast, use_bf16

    cpu = torch.device("cpu")
    assert use_bf16(torch.device("cuda"), "auto") and not use_bf16(cpu, "auto") and use_bf16(cpu, "bfloat16")
    model = GPT(GPTConfig.from_depth(1, 100, 16))
    with autocast(cpu, "bfloat16"):
        logits, loss = model(torch.randint(0, 100, (2, 16)), torch.randint(0, 100, (2, 16)))
    assert logits.dtype == torch.bfloat16 and loss is not None and loss.dtype == torch.float32
    assert model.tok_emb.weight.dtype == torch.float32
    stats = pretrain(shards, tmp_path, PretrainConfig(**{**TINY, "dtype": "bfloat16"}))  # type: ignore[arg-type]
    assert stats is not None and stats["final_loss"] < stats["first_loss"] - 1.0


@pytest.mark.slow  # torch.compile takes ~30-60 s on 2 CPU cores
def test_compiled_training_matches_eager(shards: Path, tmp_path: Path) -> None:
    base = {**TINY, "steps": 4, "eval_every": 100}
    pretrain(shards, tmp_path / "eager", PretrainConfig(**base))  # type: ignore[arg-type]
    stats = pretrain(shards, tmp_path / "compiled", PretrainConfig(**{**base, "compile": True}))  # type: ignore[arg-type]
    assert stats is not None and stats["val_loss"] is not None
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), abs=1e-3)
