"""Configs of the model package: the architecture (`GPTConfig`) and the two training stages.

All three are frozen Pydantic models with unknown keys forbidden, so a typo in a JSON config fails
loudly instead of silently training with a default. Field descriptions double as CLI/UI help text.

`GPTConfig.from_depth` is the one dial for model size (nanochat's idea): the width, head count and
key/value head count all follow from the number of layers, so presets differ by one integer.

Model presets (`MODEL_PRESETS`, set with `pretrain.depth`). Parameter counts computed by
`count_params` (tied embeddings counted once) for a 32,768-token vocabulary at seq_len 2048;
"non-emb." leaves out the token embedding. Width = 64 * depth, head_dim 64, kv heads = heads / 2:

    preset  depth  width  heads/kv  SwiGLU hidden  params   non-emb.  use
    smoke       2    128     2/1          384        4.6M      0.4M   CPU CI / demo (4,096 vocab: 0.9M)
    d6          6    384     6/3         1024       22.3M      9.7M   quick GPU runs
    d12        12    768    12/6         2048      103.0M     77.9M   the ~124M class (GPT-2 small's 12x768)
    d20        20   1280    20/10        3456      405.7M    363.8M   the ~350M class (nanochat's d20 shape)
    d28        28   1792    28/14        4800     1051.1M    992.4M   ~1B, FSDP (`pretrain.parallel="fsdp"`)

At GPT-2's 50,304-token vocabulary d12 has 116.5M parameters. GQA (half as many kv heads) is why d12
is below GPT-2 small's 124M at the same shape.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

# Checkpoint cadence fields (see CHECKPOINT_MINUTES): kept out of model_dump, passed to the subprocess.
CADENCE_FIELDS = ("checkpoint_every", "checkpoint_minutes")


def _cli_json(cfg: BaseModel) -> str:
    data = cfg.model_dump(mode="json")
    data.update({k: getattr(cfg, k) for k in CADENCE_FIELDS if k not in data and k in type(cfg).model_fields})
    return json.dumps(data)


Device = str  # "auto", "cpu", "cuda", "cuda:1", "mps": validated at run time by torch.device().
DType = Literal["auto", "float32", "bfloat16"]

# Named depths (see the table in the module docstring); `bench/train.py --presets` takes these names.
MODEL_PRESETS: dict[str, int] = {"smoke": 2, "d6": 6, "d12": 12, "d20": 20, "d28": 28}

# Time-based checkpoint cadence of both training stages. 30 minutes bounds the work a kill loses to
# 1/144 of a 3-day run, while a save (d20: ~1.6 GB of fp32 weights + 3.2 GB of AdamW moments) is ~5 s at
# 1 GB/s of disk writes (an estimate, not measured here): under 1% of the interval. Short runs (the CPU
# demo, tests) finish before the first one.
# The cadence does not change what is trained, so it is excluded from the serialised config: it is in
# no artifact id (changing it keeps the id, so a killed run still resumes) and not in train_config.json.
CHECKPOINT_MINUTES = 30.0
CHECKPOINT_MINUTES_HELP = (
    "Also save the resumable checkpoint OUT/checkpoint when this many minutes have passed since the last "
    "save (or the start); 0 = no time-based saves. A re-run of the same DAG artifact resumes from it. "
    "Not part of the artifact id."
)


class GPTConfig(BaseModel):
    """Shape of the Llama-style decoder. Saved as `model_config.json` in every model directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(gt=0, description="Number of token ids (the tokenizer's vocab size).")
    seq_len: int = Field(
        gt=0, description="Context length used in pretraining (RoPE tables grow beyond it on demand)."
    )
    n_layer: int = Field(gt=0, description="Number of transformer blocks.")
    n_embd: int = Field(gt=0, description="Residual stream width.")
    n_head: int = Field(gt=0, description="Number of query heads; head_dim = n_embd // n_head.")
    n_kv_head: int = Field(
        gt=0, description="Number of key/value heads (grouped-query attention); divides n_head."
    )
    multiple_of: int = Field(
        default=64, gt=0, description="SwiGLU hidden size is rounded up to a multiple of this."
    )
    rope_theta: float = Field(default=10000.0, gt=0, description="RoPE base frequency.")
    norm_eps: float = Field(default=1e-5, gt=0, description="RMSNorm epsilon.")
    tie_embeddings: bool = Field(
        default=True, description="Share the token embedding matrix with the output projection."
    )

    @model_validator(mode="after")
    def _check_heads(self) -> GPTConfig:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(f"n_head={self.n_head} must be divisible by n_kv_head={self.n_kv_head}")
        if (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError("head_dim = n_embd // n_head must be even for RoPE")
        return self

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU hidden size: 8/3 * width keeps the parameter count of a 4x GELU MLP."""
        hidden = int(8 * self.n_embd / 3)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @classmethod
    def from_depth(cls, depth: int, vocab_size: int, seq_len: int) -> GPTConfig:
        """Size a model from its depth alone: width 64*depth, head_dim 64, half as many kv heads."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        width = 64 * depth
        heads = max(1, width // 64)
        kv_heads = heads // 2 if heads % 2 == 0 else heads
        return cls(
            vocab_size=vocab_size,
            seq_len=seq_len,
            n_layer=depth,
            n_embd=width,
            n_head=heads,
            n_kv_head=kv_heads,
        )


class PretrainConfig(BaseModel):
    """Hyperparameters of `model.pretrain.pretrain`. Defaults: the CPU demo (~2 minutes on 2 cores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: int = Field(default=2, ge=1, description="Model depth; width = 64 * depth (GPTConfig.from_depth).")
    seq_len: int = Field(default=128, ge=8, description="Tokens per training window.")
    batch_size: int = Field(default=16, ge=1, description="Windows per micro-batch.")
    # 900 steps ~ 2 minutes on 2 CPU cores for the ~1 MB demo corpus. Measured at equal wall time:
    # depth 2 for 900 steps reached a lower val bits-per-byte than depth 3 or 4, or batch 32.
    steps: int = Field(default=900, ge=1, description="Optimizer steps.")
    lr: float = Field(default=3e-3, gt=0, description="Peak learning rate (AdamW).")
    min_lr_frac: float = Field(
        default=0.1, ge=0, le=1, description="The schedule ends at lr * min_lr_frac."
    )
    schedule: Literal["cosine", "wsd"] = Field(
        default="cosine", description="After warmup: 'cosine' decay to the floor, or 'wsd' (warmup-stable-decay): "
        "hold the peak, then decay linearly to the floor over the last decay_frac of the steps."
    )
    decay_frac: float = Field(
        default=0.2, gt=0, le=1, description="WSD only: fraction of the steps spent in the final linear decay."
    )
    warmup_steps: int = Field(default=30, ge=0, description="Linear warmup steps from 0 to lr.")
    weight_decay: float = Field(
        default=0.1, ge=0, description="AdamW weight decay on matrices and embeddings (not norms)."
    )
    grad_clip: float = Field(default=1.0, ge=0, description="Clip the global grad norm to this; 0 disables.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches accumulated per optimizer step.")
    eval_every: int = Field(
        default=100, ge=1, description="Evaluate val loss / bits-per-byte every N steps (and at the end)."
    )
    eval_batches: int = Field(default=4, ge=1, description="Val batches per evaluation (fixed windows).")
    seed: int = Field(default=0, description="Seed for init and data order.")
    device: Device = Field(default="auto", description="'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N'.")
    dtype: DType = Field(
        default="auto", description="'auto' = bf16 autocast on cuda, fp32 elsewhere; or force one."
    )
    checkpoint_every: int = Field(
        default=0, ge=0, description="Save a resumable checkpoint (weights, optimizer, RNG, loader) into "
        "OUT/checkpoint every this many steps; 0 = never (checkpoint_minutes still applies)."
    )
    checkpoint_minutes: float = Field(
        default=CHECKPOINT_MINUTES, ge=0, exclude=True, description=CHECKPOINT_MINUTES_HELP
    )

    def cli_json(self) -> str:
        """The config for the stage's subprocess: model_dump plus the fields kept out of it (the cadence)."""
        return _cli_json(self)
    compile: bool = Field(
        default=False, description="torch.compile the model: ~30 s to compile, then ~20% faster on CPU (more on GPU)."
    )
    nproc: int = Field(
        default=1, ge=1, description="Data-parallel processes (torchrun + DDP): one per GPU, or CPU processes "
        "(gloo), per node. Each rank trains batch_size windows per micro-batch, so the global batch is nnodes * nproc "
        "times larger."
    )
    parallel: Literal["ddp", "fsdp"] = Field(
        default="ddp", description="With nproc > 1: 'ddp' replicates the model on every rank; 'fsdp' shards "
        "weights, gradients and AdamW moments over the ranks (FSDP2 fully_shard, one unit per block): for the "
        "d20/d28 presets when a replica plus its optimizer does not fit one device."
    )
    peak_flops: float | None = Field(
        default=None, gt=0, description="Peak FLOP/s of one device for MFU; None = the bf16 table for known "
        "GPUs (H100, H200, A100, ...) and no MFU on CPU."
    )
    nnodes: int = Field(
        default=1, ge=1, description="Nodes, each running nproc processes: the global batch is nnodes * nproc * "
        "batch_size * grad_accum windows. With nnodes > 1 the DAG's node is node 0 and the others join it "
        "(model/launch.py); every node must see the same token shards (a shared file system)."
    )
    # Where this node sits in a multi-node run: launch facts, not training hyperparameters. Excluded from
    # model_dump, so they are in no artifact id (node 0 and node 1 of one run build the same artifact)
    # and not in the saved train_config.json.
    node_rank: int = Field(
        default=0, ge=0, exclude=True, description="This node's rank, 0..nnodes-1; the DAG runs on node 0."
    )
    rdzv_endpoint: str | None = Field(
        default=None, exclude=True, description="HOST:PORT of node 0's rendezvous (torchrun's static backend): an "
        "address of node 0 that every node reaches and a free port there, e.g. 'node001:29500'. The launch "
        "needs it when nnodes > 1."
    )

    @model_validator(mode="after")
    def _check_nodes(self) -> PretrainConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank={self.node_rank} must be < nnodes={self.nnodes}")
        return self

    @model_serializer(mode="wrap")
    def _drop_single_node(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A one-node config serialises without `nnodes`, exactly as before the field existed, so the
        artifact ids of existing single-node pretrain runs stay valid."""
        data: dict[str, Any] = handler(self)
        if self.nnodes == 1:
            data.pop("nnodes", None)
        return data


class SFTConfig(BaseModel):
    """Hyperparameters of `model.sft.sft` (supervised fine-tuning on chat data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(default=300, ge=1, description="Optimizer steps (~35 s on 2 CPU cores for the demo).")
    lr: float = Field(default=1e-3, gt=0, description="Peak learning rate (AdamW), cosine-decayed to 0.")
    batch_size: int = Field(default=8, ge=1, description="Conversations per batch (padded to the longest).")
    max_len: int | None = Field(
        default=None, ge=8, description="Conversations longer than this many tokens are truncated (counted); "
        "None = the base model's seq_len. More than the base model's seq_len is an error: positions it never "
        "saw in pretraining (and past the exported max_position_embeddings)."
    )
    warmup_steps: int = Field(default=10, ge=0, description="Linear warmup steps from 0 to lr.")
    seed: int = Field(default=0, description="Seed for the val split and batch order.")
    val_fraction: float = Field(
        default=0.05, gt=0, lt=1, description="Fraction of conversations held out for val loss."
    )
    eval_batches: int = Field(default=4, ge=1, description="Val batches for the final evaluation.")
    device: Device = Field(default="auto", description="'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:N'.")
    dtype: DType = Field(
        default="auto", description="'auto' = bf16 autocast on cuda, fp32 elsewhere; or force one."
    )
    checkpoint_every: int = Field(
        default=0, ge=0, exclude=True, description="Also save the resumable checkpoint OUT/checkpoint every this "
        "many steps; 0 = never. Not part of the artifact id."
    )
    checkpoint_minutes: float = Field(
        default=CHECKPOINT_MINUTES, ge=0, exclude=True, description=CHECKPOINT_MINUTES_HELP
    )

    def cli_json(self) -> str:
        """The config for the stage's subprocess: model_dump plus the fields kept out of it (the cadence)."""
        return _cli_json(self)
