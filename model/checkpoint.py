"""Saving and loading model directories (layout in docs/CONTRACTS.md).

Weights go to `model.safetensors`: a plain tensor format that cannot execute code when loaded,
unlike pickle-based `torch.save` files. `model_config.json` holds the `GPTConfig` fields,
`train_config.json` the stage's config. With tied embeddings only `tok_emb.weight` is stored
(safetensors refuses two names for one storage); loading re-ties it.

Optimizer state (for resuming) is saved with `torch.save` and loaded with `weights_only=True`, which
only unpickles tensors and plain containers. In a training checkpoint it is keyed by parameter name
(not by position), the format `torch.distributed.checkpoint.state_dict` uses for FSDP, so one file
format serves single-process, DDP and FSDP runs.

Under FSDP (`pretrain.parallel="fsdp"`) every rank holds a shard of each weight: `model_state` and
`optimizer_state` gather the full tensors onto rank 0's CPU (collectives: every rank must call them),
rank 0 writes the same files as a single-process run, and on resume every rank reads the full files and
keeps its shard (`load_optimizer_state`).

A training checkpoint lives in `OUT/checkpoint`. It is written to `checkpoint.part`, then swapped in by
renames (old -> `checkpoint.old`, new -> `checkpoint`, then the old one is deleted), so a kill at any
moment leaves one complete checkpoint: `latest_checkpoint` finds it (a missing `checkpoint` after a kill
in the middle of the swap means `checkpoint.old` is the one; a `checkpoint.part` is never trusted).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from model.config import GPTConfig
from model.gpt import GPT

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "model_config.json"
TRAIN_CONFIG = "train_config.json"
TOKENIZER_DIR = "tokenizer"


def _is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The full, unsharded weights on the CPU. Under FSDP a collective: every rank must call it, and
    only rank 0 gets the tensors (the others an empty dict)."""
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().to("cpu") for k, v in model.state_dict().items()}


def save_model(
    out_dir: Path | str,
    model: GPT,
    train_config: BaseModel | dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write weights, model_config.json and (when given) train_config.json into out_dir.
    `state`: weights already gathered by `model_state` (FSDP); default: the model's own.
    `metadata`: extra strings for the safetensors header (a checkpoint's step)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if state is None:
        state = model_state(model)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out_dir / WEIGHTS), metadata={"format": "pt", **(metadata or {})})
    (out_dir / MODEL_CONFIG).write_text(model.config.model_dump_json(indent=2) + "\n")
    if train_config is not None:
        data = train_config.model_dump(mode="json") if isinstance(train_config, BaseModel) else train_config
        (out_dir / TRAIN_CONFIG).write_text(json.dumps(data, indent=2) + "\n")


def load_config(model_dir: Path | str) -> GPTConfig:
    path = Path(model_dir) / MODEL_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a model directory written by pretrain or sft")
    return GPTConfig.model_validate_json(path.read_text())


def load_model(model_dir: Path | str, device: torch.device | str = "cpu") -> GPT:
    """Rebuild the GPT from model_config.json and load model.safetensors onto `device`."""
    model_dir = Path(model_dir)
    cfg = load_config(model_dir)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the model directory is incomplete, re-run training")
    model = GPT(cfg)
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if cfg.tie_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        raise ValueError(
            f"{weights} does not match {MODEL_CONFIG}: missing {sorted(set(missing) - allowed_missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    return model.to(device)


def copy_tokenizer(tokenizer_dir: Path | str, out_dir: Path | str) -> Path:
    """Copy a tokenizer directory into out_dir/tokenizer so the model directory is self-contained."""
    src = Path(tokenizer_dir)
    if not (src / "tokenizer.model").is_file():
        raise FileNotFoundError(f"{src}/tokenizer.model not found: pass the output directory of the tokenizer stage")
    dst = Path(out_dir) / TOKENIZER_DIR
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def save_optimizer(path: Path | str, optimizer: torch.optim.Optimizer, extra: dict[str, Any] | None = None) -> None:
    """Optimizer state (tensors, numbers, lists) plus small JSON-like extras such as the step and
    the data loader state."""
    torch.save({"optimizer": optimizer.state_dict(), "extra": extra or {}}, path)


def load_optimizer(path: Path | str, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore optimizer state saved by save_optimizer; returns the extras."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    return blob["extra"]


TRAINING_STATE = "state.json"
OPTIMIZER = "optimizer.pt"


def _param_names(model: torch.nn.Module) -> dict[int, str]:
    """id(parameter) -> name; a tied weight gets its first name (named_parameters skips repeats)."""
    return {id(p): name for name, p in getattr(model, "_orig_mod", model).named_parameters()}


def optimizer_state(model: GPT, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's full state keyed by parameter name. Under FSDP a collective (rank 0 gets it)."""
    model = getattr(model, "_orig_mod", model)
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    # torch numbers parameters 0, 1, ... in param_groups order; swap those numbers for names.
    names = _param_names(model)
    ordered = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    sd = optimizer.state_dict()
    return {
        "state": {ordered[i]: {k: v.to("cpu") if torch.is_tensor(v) else v for k, v in st.items()}
                  for i, st in sd["state"].items()},
        "param_groups": [{**g, "params": [ordered[i] for i in g["params"]]} for g in sd["param_groups"]],
    }


def load_optimizer_state(model: GPT, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of `optimizer_state`: every rank passes the full state; under FSDP each keeps its shard."""
    model = getattr(model, "_orig_mod", model)
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                                 options=StateDictOptions(full_state_dict=True))
        return
    names = _param_names(model)
    ordered = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    index = {name: i for i, name in enumerate(ordered)}
    if set(state["state"]) - set(index):
        raise ValueError("optimizer state names parameters this model does not have; cannot resume")
    optimizer.load_state_dict({
        "state": {index[name]: st for name, st in state["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]],
    })


def save_training_state(
    ckpt_dir: Path | str,
    step: int,
    model: GPT,
    weights: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
    loader_state: dict[str, Any],
    losses: list[float],
    train_config: BaseModel,
    rng: dict[str, Any] | None = None,
) -> None:
    """Everything exact resume needs: weights, optimizer moments, torch RNG, loader position, step, losses.
    `weights` / `optim_state` come from `model_state` / `optimizer_state` (gathered on rank 0 under FSDP);
    `rng`: more generator states to restore (JSON-like, e.g. SFT's numpy batch order), kept in state.json.

    Written to `<ckpt_dir>.part` (files fsynced, state.json last) and swapped in by renames, so a kill or a
    crash at any point leaves a complete checkpoint that `latest_checkpoint` finds.
    """
    ckpt_dir = Path(ckpt_dir)
    tmp, old = _sibling(ckpt_dir, PART), _sibling(ckpt_dir, ASIDE)
    if tmp.exists():
        shutil.rmtree(tmp)
    # Every file names its step, so a checkpoint copied file by file (a bucket mirror) from two saves is caught.
    save_model(tmp, model, train_config, state=weights, metadata={"step": str(step)})
    torch.save({"optimizer": optim_state, "extra": {"torch_rng": torch.get_rng_state(), "step": step}},
               tmp / OPTIMIZER)
    state = {"step": step, "loader": loader_state, "losses": losses, **({"rng": rng} if rng is not None else {})}
    (tmp / TRAINING_STATE).write_text(json.dumps(state))
    _fsync_files(tmp)  # a power cut after the rename must not leave a renamed but empty file
    if ckpt_dir.exists():
        if old.exists():  # left by an earlier swap that was cut short; ckpt_dir is the newer complete one
            shutil.rmtree(old)
        ckpt_dir.rename(old)
    tmp.rename(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


CHECKPOINT = "checkpoint"
PART, ASIDE = ".part", ".old"


def _sibling(ckpt_dir: Path, suffix: str) -> Path:
    return ckpt_dir.with_name(ckpt_dir.name + suffix)


def _fsync_files(directory: Path) -> None:
    for f in sorted(directory.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def is_complete(ckpt_dir: Path | str) -> bool:
    """Whether a directory holds a whole training checkpoint (state.json is written last)."""
    ckpt_dir = Path(ckpt_dir)
    return all((ckpt_dir / name).is_file() for name in (WEIGHTS, MODEL_CONFIG, OPTIMIZER, TRAINING_STATE))


def latest_checkpoint(out_dir: Path | str) -> Path | None:
    """The complete checkpoint a re-run of `out_dir` resumes from: `OUT/checkpoint`, or `OUT/checkpoint.old`
    when a kill came between the two renames of the swap; None when there is none (start from scratch).
    `OUT/checkpoint.part` (being written) is never taken."""
    main = Path(out_dir) / CHECKPOINT
    for candidate in (main, _sibling(main, ASIDE)):
        if is_complete(candidate):
            return candidate
    return None


def remove_checkpoints(out_dir: Path | str) -> None:
    """Delete `OUT/checkpoint` and its `.part` / `.old` siblings: a finished model directory does not carry
    the optimizer state (twice the weights' size) into the artifact."""
    main = Path(out_dir) / CHECKPOINT
    for d in (main, _sibling(main, PART), _sibling(main, ASIDE)):
        shutil.rmtree(d, ignore_errors=True)


def check_same_model(ckpt_dir: Path | str, cfg: GPTConfig) -> None:
    """A clear error when a checkpoint was written for another model shape (depth, vocab, seq_len...)."""
    saved = load_config(ckpt_dir)
    diffs = [f"{k}={getattr(saved, k)} there, {getattr(cfg, k)} here"
             for k in GPTConfig.model_fields if getattr(saved, k) != getattr(cfg, k)]
    if diffs:
        raise ValueError(
            f"{ckpt_dir} was saved for another model ({'; '.join(diffs)}): resume with the depth, seq_len and "
            "token shards of that run, or start a new run without --resume"
        )


def read_training_state(ckpt_dir: Path | str, model: GPT) -> dict[str, Any]:
    """Check the checkpoint fits `model`, load its weights into `model` (before any FSDP sharding) and
    restore the torch RNG; returns ``{"step", "loader", "losses", "optimizer"}`` and ``"rng"`` when one was
    saved (the optimizer state goes to `load_optimizer_state` once the optimizer exists)."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / TRAINING_STATE).is_file():
        raise FileNotFoundError(f"{ckpt_dir} holds no training checkpoint ({TRAINING_STATE}); "
                                "pass a checkpoint/ directory")
    check_same_model(ckpt_dir, model.config)
    saved = json.loads((ckpt_dir / TRAINING_STATE).read_text())
    with safe_open(str(ckpt_dir / WEIGHTS), "pt") as f:
        weights_step = (f.metadata() or {}).get("step")
    blob = torch.load(ckpt_dir / OPTIMIZER, map_location="cpu", weights_only=True)
    steps = {"state.json": saved["step"], WEIGHTS: weights_step and int(weights_step),
             OPTIMIZER: blob["extra"].get("step")}
    if len({v for v in steps.values() if v is not None}) > 1:  # None: written before files named their step
        raise ValueError(f"{ckpt_dir} mixes files of different saves (steps {steps}): it was copied file by file; "
                         "delete it to train from the start, or resume from a checkpoint that was copied whole")
    state = load_file(str(ckpt_dir / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - ({"lm_head.weight"} if model.config.tie_embeddings else set()) or unexpected:
        raise ValueError(f"{ckpt_dir} was saved for a different model configuration; cannot resume")
    torch.set_rng_state(blob["extra"]["torch_rng"])
    return {**saved, "optimizer": blob["optimizer"]}


class SaveClock:
    """When a training loop saves its checkpoint: every `every` steps (0 = never) and whenever `minutes`
    have passed since the last save or the start (0 = never)."""

    def __init__(self, every: int, minutes: float) -> None:
        self.every, self.seconds = every, minutes * 60
        self.last = time.monotonic()

    def time_due(self) -> bool:
        return self.seconds > 0 and time.monotonic() - self.last >= self.seconds

    def step_due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def saved(self) -> None:
        self.last = time.monotonic()


def carried_metrics(out_dir: Path | str, resume_from: Path | str | None, step: int) -> list[dict[str, Any]]:
    """The metrics.jsonl rows of steps 1..`step` when `resume_from` is a checkpoint inside `out_dir` (a re-run
    of the same build): the resumed run writes them again, so the log and the loss plot cover the whole run
    and the steps a killed attempt logged after its last checkpoint are dropped. Empty otherwise."""
    path = Path(out_dir) / "metrics.jsonl"
    if resume_from is None or Path(resume_from).resolve().parent != Path(out_dir).resolve() or not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed run may be cut
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            rows.append(row)
    return rows
