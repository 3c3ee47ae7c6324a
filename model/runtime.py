"""Small pieces shared by the pretrain and SFT loops: device/precision choice, CPU threads, the
optimizer, the learning-rate schedule, metrics logging and the loss plot."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; anything else must be a valid, available torch device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available: use device='auto' or 'cpu'")
    return device


def configure_threads(device: torch.device, procs_per_node: int = 1) -> int:
    """On CPU, use one intra-op thread per core this process may run on (respects taskset/cgroup
    affinity, unlike os.cpu_count()), shared out among `procs_per_node` ranks. Returns the thread count."""
    if device.type != "cpu":
        return torch.get_num_threads()
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n // max(1, procs_per_node)))
    return torch.get_num_threads()


def use_bf16(device: torch.device, dtype: str) -> bool:
    """bf16 when dtype is 'bfloat16', or 'auto' on CUDA (bf16 matmuls on most CPUs are slower than fp32
    ones, and fp32 is the honest baseline there)."""
    return dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast where `use_bf16` says so (weights stay fp32, matmuls run in bf16); else fp32."""
    if use_bf16(device, dtype):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_adamw(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decay on matrices/embeddings only: decaying norm gains just fights the norm."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # betas (0.9, 0.95): the usual LM choice; a shorter second-moment memory tolerates loss spikes.
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")


def lr_at(
    step: int, total: int, warmup: int, peak: float, min_frac: float, schedule: str = "cosine",
    decay_frac: float = 0.2,
) -> float:
    """Learning rate for 0-based `step`: linear warmup to peak, then either cosine down to peak*min_frac
    ('cosine') or warmup-stable-decay ('wsd'): the peak held until the last `decay_frac` of the steps,
    then a linear ramp to peak*min_frac. WSD's stable phase lets a run be extended (or branched for a
    cooldown) without re-planning the whole schedule; MiniCPM/DeepSeek report it matching cosine."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * min_frac
    if schedule == "wsd":
        decay_start = max(warmup, total - max(1, round(decay_frac * total)))
        if step < decay_start:
            return peak
        progress = min(1.0, (step - decay_start + 1) / max(1, total - decay_start))
        return peak - (peak - floor) * progress
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule '{schedule}': use 'cosine' or 'wsd'")
    decay_steps = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl and keeps the rows for the plot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._f = path.open("w")

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()  # a crashed or watched run still shows its curve so far

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plot_loss(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss per step and val loss at eval steps, as a PNG. Uses the Agg canvas directly
    (no pyplot), so it never touches a display or global matplotlib state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)




# --- throughput / memory metrics ------------------------------------------------------------------

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, matched against torch.cuda.get_device_name().
# Longer keys first so "H100 PCIe" wins over "H100".
BF16_PEAK_FLOPS: dict[str, float] = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM
    "H200": 989e12,
    "GH200": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "A10G": 70e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


def device_peak_flops(device: torch.device, configured: float | None = None) -> float | None:
    """The bf16 peak FLOP/s used for MFU: `configured` when given, else the table entry for the CUDA
    device's name; None on CPU/MPS or an unknown GPU (then only achieved FLOP/s is reported)."""
    if configured:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(BF16_PEAK_FLOPS, key=len, reverse=True):
        if key in name:
            return BF16_PEAK_FLOPS[key]
    return None


def flops_per_token(n_params: int, n_layer: int, n_embd: int, seq_len: int, embedding_params: int = 0) -> int:
    """Training FLOPs per token (forward + backward): 6 per matmul weight, plus the attention scores
    and values, 12 * layers * width * seq_len (the PaLM / nanochat convention, causal mask ignored).
    `embedding_params` are parameters used only as a lookup (an untied input embedding): no FLOPs."""
    return 6 * (n_params - embedding_params) + 12 * n_layer * n_embd * seq_len


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process: CUDA allocator peak on GPU, peak resident set size elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


class TensorBoardLog:
    """Scalars to TensorBoard event files when the optional `tensorboard` package is installed
    (`pip install -e '.[train]'`); otherwise a no-op that says so once in the log."""

    def __init__(self, log_dir: Path) -> None:
        import logging

        self._writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch.utils.tensorboard raises ImportError without the package
            logging.getLogger(__name__).info("tensorboard not installed: no TensorBoard logs (pip install tensorboard)")
            return
        self._writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def write(self, row: dict[str, Any], step: int) -> None:
        if self._writer is None:
            return
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# --- distributed data parallel (torchrun) ----------------------------------------------------------


class DistInfo:
    """Rank facts from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); world 1 without torchrun."""

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard_model(model: nn.Module, bf16: bool) -> None:
    """FSDP2: shard every transformer block, then the root (embedding, final norm, head), over the ranks
    of the default process group. Each block is one all-gather unit: its full weights exist only while
    it runs, so per-rank weight + gradient + AdamW memory is ~1/world of a replica's (16 bytes/param
    for fp32 weights, grads and two moments: 16.8 GB for d28 on one GPU, 2.1 GB per rank on 8).
    reshard_after_forward on the blocks frees them between forward and backward (ZeRO-3); the root stays
    gathered, since its weights are needed first in backward anyway. With bf16 the weights are gathered
    in bf16 (half the traffic) while gradients are reduced in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy()  # fp32 everywhere
    if bf16:
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp, reshard_after_forward=False)


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join torchrun's process group when WORLD_SIZE > 1: nccl on CUDA (one GPU per local rank),
    gloo on CPU. Returns the rank facts and this rank's device."""
    import torch.distributed as dist

    info = DistInfo()
    device = resolve_device(device_name)
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed training supports cuda and cpu devices, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return info, device
