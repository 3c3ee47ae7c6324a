"""FSDP (`pretrain.parallel="fsdp"`, FSDP2 `fully_shard`) on the CPU: 2 torchrun processes over gloo.

torch 2.13's FSDP2 runs on CPU tensors with the gloo backend (all-gather, reduce-scatter), so the sharded
path is tested here for real: the same losses as one process with the doubled batch, weights gathered to
rank 0 on save, and exact resume from a checkpoint written by sharded ranks (both `slow`: torchrun
launches). The default run checks the sharding and the checkpoint gather/scatter in-process, on a
one-rank gloo group. bf16 mixed precision
(`MixedPrecisionPolicy`) and nccl need a GPU and are not covered here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model import checkpoint
from model.config import PretrainConfig
from model.gpt import GPT
from model.pretrain import pretrain
from model.runtime import make_adamw, shard_model
from test_model_train import TINY, losses, shards, torchrun  # noqa: F401  (shards is a fixture)

FSDP = {**TINY, "batch_size": 4, "nproc": 2, "parallel": "fsdp", "depth": 2}


@pytest.fixture
def one_rank_group():  # type: ignore[no-untyped-def]
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor]) -> list[float]:
    out = []
    for x in batches:
        _, loss = model(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append(float(loss.detach()))
    return out


def test_sharded_model_trains_like_the_plain_one_and_its_state_round_trips(one_rank_group: None) -> None:
    """fully_shard on one rank: same losses as the unsharded model; the gathered weights and name-keyed
    AdamW state load into a fresh sharded model and optimizer, which then continue identically."""
    from model.config import GPTConfig

    cfg = GPTConfig.from_depth(2, 97, 8)
    batches = [torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(i)) for i in range(4)]

    def build(shard: bool) -> tuple[GPT, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = GPT(cfg)
        if shard:
            shard_model(model, bf16=False)
        return model, make_adamw(model, 1e-2, 0.1, torch.device("cpu"))

    plain, plain_opt = build(False)
    sharded, sharded_opt = build(True)
    assert type(sharded.blocks[0].attn.wq.weight).__name__ == "DTensor"
    assert _train(sharded, sharded_opt, batches[:2]) == pytest.approx(_train(plain, plain_opt, batches[:2]), abs=1e-5)

    # Through bytes, as through optimizer.pt on disk: on one CPU rank the gathered tensors may alias the
    # live ones, and the resumed copy must not train the original's moments.
    buf = io.BytesIO()
    torch.save((checkpoint.model_state(sharded), checkpoint.optimizer_state(sharded, sharded_opt)), buf)
    buf.seek(0)
    weights, moments = torch.load(buf, weights_only=True)
    assert isinstance(weights["blocks.1.mlp.w2.weight"], torch.Tensor) and weights["tok_emb.weight"].shape == (97, 128)
    assert set(moments["state"]) == set(checkpoint.optimizer_state(plain, plain_opt)["state"])

    resumed, resumed_opt = build(False)
    resumed.load_state_dict(weights)
    shard_model(resumed, bf16=False)
    resumed_opt = make_adamw(resumed, 1e-2, 0.1, torch.device("cpu"))
    checkpoint.load_optimizer_state(resumed, resumed_opt, moments)
    assert _train(resumed, resumed_opt, batches[2:]) == _train(sharded, sharded_opt, batches[2:])


@pytest.mark.slow  # ~20 s alone, 60+ s on the shared 2-core machine
def test_fsdp_two_cpu_ranks_equal_one_process_with_twice_the_batch(shards: Path, tmp_path: Path) -> None:  # noqa: F811
    proc = torchrun(2, tmp_path / "fsdp", shards, FSDP)
    stats = json.loads([line for line in proc.stdout.splitlines() if line.strip()][-1])
    assert stats["world_size"] == 2 and stats["parallel"] == "fsdp"
    assert stats["final_loss"] < stats["first_loss"] - 1.0

    single = pretrain(shards, tmp_path / "one", PretrainConfig(**{**TINY, "depth": 2}))  # type: ignore[arg-type]
    assert single is not None and stats["params"] == single["params"]
    # Sharded reduce-scatter sums in another order than one process's backward: equal to float rounding.
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), abs=1e-3)
    assert stats["val_loss"] == pytest.approx(single["val_loss"], abs=1e-3)  # every rank evaluated, rank 0 wrote

    # Rank 0 gathered the full weights: an ordinary model directory, loadable without torch.distributed.
    a = load_file(str(tmp_path / "fsdp" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-3
    model = checkpoint.load_model(tmp_path / "fsdp")
    x = torch.randint(3, 90, (1, 16))
    assert torch.isfinite(model(x)[0]).all()


@pytest.mark.slow  # three torchrun launches
def test_fsdp_exact_resume_from_a_sharded_checkpoint(shards: Path, tmp_path: Path) -> None:  # noqa: F811
    """2 FSDP ranks straight through == 2 FSDP ranks stopped after 5 steps + resumed: identical losses and
    weights (the checkpoint holds the gathered weights and AdamW moments; each rank re-shards them)."""
    torchrun(2, tmp_path / "full", shards, FSDP)
    half = torchrun(2, tmp_path / "half", shards, FSDP, "--stop-after", "5")
    assert json.loads(half.stdout.strip().splitlines()[-1])["steps"] == 5
    saved = torch.load(tmp_path / "half" / "checkpoint" / "optimizer.pt", weights_only=True)["optimizer"]
    assert "blocks.0.attn.wq.weight" in saved["state"]  # full moments keyed by name, not one rank's shard
    wq = load_file(str(tmp_path / "half" / "checkpoint" / "model.safetensors"))["blocks.0.attn.wq.weight"]
    assert saved["state"]["blocks.0.attn.wq.weight"]["exp_avg"].shape == wq.shape
    torchrun(2, tmp_path / "rest", shards, FSDP, "--resume", str(tmp_path / "half" / "checkpoint"))
    assert losses(tmp_path / "half") + losses(tmp_path / "rest") == losses(tmp_path / "full")
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "rest" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    # The checkpoint has the single-process format: DDP ranks resume it too (same losses up to reduction order).
    torchrun(2, tmp_path / "ddp", shards, {**FSDP, "parallel": "ddp"},
             "--resume", str(tmp_path / "half" / "checkpoint"))
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "rest"), abs=1e-3)
