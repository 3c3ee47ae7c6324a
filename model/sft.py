"""Supervised fine-tuning: continue training a pretrained model on chat conversations, with the loss on
assistant tokens only (see `model.chat` for the template and the mask).

`sft(base_dir, data_files, out_dir, cfg)` loads the model directory written by pretraining (weights
from safetensors, tokenizer from `base_dir/tokenizer`), encodes every conversation, holds out
`val_fraction` of them, trains with padded batches (targets = -100 on prompts and padding), reports
the held-out loss before and after, and writes a model directory with the same layout.

Exact resume, as in pretraining: `OUT/checkpoint` (weights, AdamW moments, torch RNG, the batch order's
generator state and position, step, losses) is saved every `checkpoint_every` steps / `checkpoint_minutes`
minutes; a run given `resume_from` (CLI `--resume DIR`, or `--resume-latest`: the last complete checkpoint in
OUT, what the DAG passes) logs the same losses and ends with the same weights, bit for bit, as one that was
never stopped (tested on CPU with kill -9).

CLI: python -m model.sft --base DIR --data FILE [FILE...] --out DIR --config JSON [--resume-latest]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import checkpoint
from model.chat import encode_conversation, load_conversations
from model.cli import parse_config, run_cli
from model.config import SFTConfig
from model.gpt import GPT, IGNORE_INDEX
from model.runtime import MetricsLog, autocast, configure_threads, lr_at, make_adamw, plot_loss, resolve_device, set_lr
from model.tok import load_tokenizer

log = logging.getLogger(__name__)

Example = tuple[list[int], list[int]]  # (ids, loss mask)


def collate(examples: list[Example], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest example; inputs are ids[:-1], targets ids[1:] with -100 wherever
    the mask is 0 or there is padding."""
    width = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), width), pad_id, dtype=torch.long)
    y = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(examples):
        n = len(ids) - 1
        x[row, :n] = torch.tensor(ids[:-1])
        targets = torch.tensor(ids[1:])
        y[row, :n] = targets.masked_fill(torch.tensor(mask[1:]) == 0, IGNORE_INDEX)
    return x.to(device), y.to(device)


class ShuffledBatches:
    """Endless (epoch, batch) stream: each epoch visits every example once, in a fresh random order.

    Its state (the generator's state before the current epoch's permutation, the epoch and the position in
    it) is small JSON, so a checkpoint resumes the very same batches."""

    def __init__(self, examples: list[Example], batch_size: int, rng: np.random.Generator) -> None:
        self.examples, self.batch_size, self.rng = examples, batch_size, rng
        self.epoch = 0
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch_rng = self.rng.bit_generator.state
        self.order, self.pos = self.rng.permutation(len(self.examples)), 0

    def __iter__(self) -> ShuffledBatches:
        return self

    def __next__(self) -> tuple[int, list[Example]]:
        batch = []
        for _ in range(self.batch_size):
            if self.pos == len(self.order):
                self.epoch += 1
                self._new_epoch()
            batch.append(self.examples[self.order[self.pos]])
            self.pos += 1
        return self.epoch, batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "epoch_rng": self.epoch_rng, "examples": len(self.examples)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["examples"] != len(self.examples):
            raise ValueError(f"the checkpoint was saved for {state['examples']} training conversations, these data "
                             f"give {len(self.examples)}: resume with the same data and config")
        self.rng.bit_generator.state = state["epoch_rng"]
        self.epoch = state["epoch"]
        self._new_epoch()  # draws the same permutation again, leaving the generator where the run had it
        self.pos = state["pos"]


@torch.no_grad()
def evaluate(model: GPT, val: list[Example], cfg: SFTConfig, pad_id: int, device: torch.device) -> float:
    """Token-weighted mean loss over the first eval_batches batches of the (fixed) val set."""
    model.eval()
    total, count = 0.0, 0
    for b in range(cfg.eval_batches):
        chunk = val[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        if not chunk:
            break
        x, y = collate(chunk, pad_id, device)
        with autocast(device, cfg.dtype):
            _, loss = model(x, y)
        n = int((y != IGNORE_INDEX).sum())
        assert loss is not None
        total += float(loss) * n
        count += n
    model.train()
    return total / count


def sft(base_dir: Path | str, data_files: list[str], out_dir: Path | str, cfg: SFTConfig, *,
        resume_from: Path | str | None = None) -> dict[str, Any]:
    """Fine-tune the model in `base_dir` on `data_files`; write the result into `out_dir`.
    `resume_from`: a `checkpoint/` directory of an earlier run of the same base, data and config.

    Returns stats: steps, first_loss, final_loss (mean of the last 10 steps), val_loss (held-out,
    after training), val_loss_initial (before), seconds, examples, dropped records by reason,
    truncated conversations, tokens_per_s (this run's steps), device, resumed_from_step (None: from scratch).
    """
    t_start = time.perf_counter()
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    tok_dir = base_dir / checkpoint.TOKENIZER_DIR
    tok = load_tokenizer(tok_dir)
    device = resolve_device(cfg.device)
    configure_threads(device)
    torch.manual_seed(cfg.seed)
    model = checkpoint.load_model(base_dir, device)
    if tok.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"{tok_dir} has {tok.vocab_size} tokens but the model {model.config.vocab_size}: "
            "the base directory's tokenizer/ is not the one the model was trained with"
        )

    limit = model.config.seq_len
    if cfg.max_len is not None and cfg.max_len > limit:
        raise ValueError(
            f"sft.max_len={cfg.max_len} is over the base model's maximum sequence length {limit} "
            f"(its pretrain.seq_len): set sft.max_len <= {limit}, or pretrain with seq_len >= {cfg.max_len}"
        )
    max_len = cfg.max_len or limit

    conversations, dropped = load_conversations(list(data_files))
    examples: list[Example] = []
    truncated = 0
    for messages in conversations:
        ids, mask = encode_conversation(tok, messages)
        if len(ids) > max_len:
            ids, mask = ids[:max_len], mask[:max_len]
            truncated += 1
        if sum(mask[1:]) == 0:
            dropped["no_reply_within_max_len"] = dropped.get("no_reply_within_max_len", 0) + 1
            continue
        examples.append((ids, mask))
    if len(examples) < 2:
        raise ValueError(
            f"only {len(examples)} usable conversations in {list(data_files)} (dropped: {dropped}); "
            "need at least 2: pass Alpaca, ShareGPT or messages-style chat data"
        )

    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(examples))
    n_val = max(1, round(cfg.val_fraction * len(examples)))
    val = [examples[i] for i in order[:n_val]]
    train = [examples[i] for i in order[n_val:]]
    log.info("sft: %d train / %d val conversations, %d truncated, dropped %s", len(train), len(val), truncated, dropped)

    # No weight decay: it pulls weights toward zero, not toward the pretrained values, so in a short
    # fine-tune it would only erode the base model.
    optimizer = make_adamw(model, cfg.lr, 0.0, device)
    val_initial = evaluate(model, val, cfg, tok.pad_id, device)  # of the base weights, also when resuming
    out_dir.mkdir(parents=True, exist_ok=True)
    losses: list[float] = []
    tokens_trained = 0
    train_seconds = collate_seconds = 0.0
    batches = ShuffledBatches(train, cfg.batch_size, rng)
    start_step = 1
    if resume_from is not None:
        resumed = checkpoint.read_training_state(resume_from, model)  # weights and the torch RNG
        checkpoint.load_optimizer_state(model, optimizer, resumed["optimizer"])
        batches.load_state_dict(resumed["loader"])
        losses, start_step = list(resumed["losses"]), int(resumed["step"]) + 1
        log.info("sft: resumed from %s at step %d", resume_from, start_step)
    carried = checkpoint.carried_metrics(out_dir, resume_from, start_step - 1)
    clock = checkpoint.SaveClock(cfg.checkpoint_every, cfg.checkpoint_minutes)
    with MetricsLog(out_dir / "metrics.jsonl") as metrics:
        for old_row in carried:
            metrics.write(old_row)
        for step in range(start_step, cfg.steps + 1):
            t0 = time.perf_counter()
            epoch, batch = next(batches)
            x, y = collate(batch, tok.pad_id, device)
            collate_seconds += time.perf_counter() - t0
            lr = lr_at(step - 1, cfg.steps, cfg.warmup_steps, cfg.lr, 0.0)
            set_lr(optimizer, lr)
            with autocast(device, cfg.dtype):
                _, loss = model(x, y)
            assert loss is not None
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_loss = float(loss.detach())
            if not math.isfinite(train_loss):
                raise RuntimeError(f"SFT loss is {train_loss} at step {step}: lower lr")
            dt = time.perf_counter() - t0
            train_seconds += dt
            n_tokens = int((x != tok.pad_id).sum())
            tokens_trained += n_tokens
            losses.append(train_loss)
            row: dict[str, Any] = {
                "step": step,
                "loss": round(train_loss, 5),
                "lr": lr,
                "grad_norm": round(float(grad_norm), 5),
                "loss_tokens": int((y != IGNORE_INDEX).sum()),
                "epoch": epoch,
                "elapsed_s": round(time.perf_counter() - t_start, 3),
            }
            if step == cfg.steps:
                row["val_loss"] = round(evaluate(model, val, cfg, tok.pad_id, device), 5)
            metrics.write(row)
            if step == 1 or step % 10 == 0 or step == cfg.steps:
                log.info("sft step %d/%d loss %.4f lr %.2e", step, cfg.steps, train_loss, lr)
            # No save at the last step: the model directory is written right after it.
            if step < cfg.steps and (clock.step_due(step) or clock.time_due()):
                checkpoint.save_training_state(
                    out_dir / checkpoint.CHECKPOINT, step, model, checkpoint.model_state(model),
                    checkpoint.optimizer_state(model, optimizer), batches.state_dict(), losses, cfg)
                clock.saved()

    checkpoint.save_model(out_dir, model, cfg)
    checkpoint.remove_checkpoints(out_dir)  # the model directory is complete: resume state is no longer needed
    checkpoint.copy_tokenizer(tok_dir, out_dir)
    plot_loss(metrics.rows, out_dir / "loss.png", f"SFT of {base_dir.name}")
    return {
        "steps": cfg.steps,
        "first_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "val_loss": metrics.rows[-1]["val_loss"],
        "val_loss_initial": round(val_initial, 5),
        "seconds": round(time.perf_counter() - t_start, 3),
        "examples": {"train": len(train), "val": len(val)},
        "dropped": dropped,
        "truncated": truncated,
        "max_len": max_len,
        "tokens_per_s": round(tokens_trained / train_seconds, 1) if train_seconds > 0 else None,
        # Batching's share of the training time (shuffle, pad, copy to the device): the data path's cost.
        "loader_share": round(collate_seconds / train_seconds, 5) if train_seconds > 0 else None,
        "device": str(device),
        "resumed_from_step": start_step - 1 if resume_from is not None else None,
    }


def _main(argv: list[str] | None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m model.sft", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, type=Path, help="pretrained model directory")
    p.add_argument("--data", required=True, nargs="+", help="SFT files (JSON array or JSONL)")
    p.add_argument("--out", required=True, type=Path, help="output model directory")
    p.add_argument("--config", help="SFTConfig as a JSON file or inline JSON object (default: defaults)")
    p.add_argument("--resume", type=Path, help="resume exactly from this checkpoint/ directory")
    p.add_argument("--resume-latest", action="store_true", help="resume from the last complete checkpoint in "
                   "OUT (a re-run of a killed or failed run, as the DAG does); from scratch when there is none")
    args = p.parse_args(argv)
    resume = args.resume or (checkpoint.latest_checkpoint(args.out) if args.resume_latest else None)
    return sft(args.base, args.data, args.out, parse_config(args.config, SFTConfig), resume_from=resume)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
