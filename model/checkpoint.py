"""Saving and loading model directories (layout in docs/CONTRACTS.md).

Weights go to `model.safetensors`: a plain tensor format that cannot execute code when loaded,
unlike pickle-based `torch.save` files. `model_config.json` holds the `GPTConfig` fields,
`train_config.json` the stage's config. With tied embeddings only `tok_emb.weight` is stored
(safetensors refuses two names for one storage); loading re-ties it.

Optimizer state (for resuming, minimal for now) is saved with `torch.save` and loaded with
`weights_only=True`, which only unpickles tensors and plain containers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

from model.config import GPTConfig
from model.gpt import GPT

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "model_config.json"
TRAIN_CONFIG = "train_config.json"
TOKENIZER_DIR = "tokenizer"


def save_model(out_dir: Path | str, model: GPT, train_config: BaseModel | dict[str, Any] | None = None) -> None:
    """Write weights, model_config.json and (when given) train_config.json into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out_dir / WEIGHTS), metadata={"format": "pt"})
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


def save_training_state(
    ckpt_dir: Path | str,
    step: int,
    model: GPT,
    optimizer: torch.optim.Optimizer,
    loader_state: dict[str, Any],
    losses: list[float],
    train_config: BaseModel,
) -> None:
    """Everything exact resume needs: weights, optimizer moments, torch RNG, loader position, step, losses.

    Written to a temporary name and renamed, so a crash while saving leaves the previous checkpoint intact.
    """
    ckpt_dir = Path(ckpt_dir)
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(tmp, model, train_config)
    save_optimizer(tmp / OPTIMIZER, optimizer, extra={"torch_rng": torch.get_rng_state()})
    (tmp / TRAINING_STATE).write_text(json.dumps({"step": step, "loader": loader_state, "losses": losses}))
    if ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    tmp.rename(ckpt_dir)


def load_training_state(ckpt_dir: Path | str, model: GPT, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights, optimizer and torch RNG in place; returns ``{"step", "loader", "losses"}``."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / TRAINING_STATE).is_file():
        raise FileNotFoundError(f"{ckpt_dir} holds no training checkpoint ({TRAINING_STATE}); pass a checkpoint/ directory")
    state = load_file(str(ckpt_dir / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - ({"lm_head.weight"} if model.config.tie_embeddings else set()) or unexpected:
        raise ValueError(f"{ckpt_dir} was saved for a different model configuration; cannot resume")
    extra = load_optimizer(ckpt_dir / OPTIMIZER, optimizer)
    torch.set_rng_state(extra["torch_rng"])
    return json.loads((ckpt_dir / TRAINING_STATE).read_text())
