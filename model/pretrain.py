"""Pretraining: next-token prediction on token shards.

`pretrain(tokens_dir, out_dir, cfg, tokenizer_dir)` trains a `GPT` sized by `cfg.depth` with AdamW,
linear warmup + cosine decay, gradient clipping and gradient accumulation; logs every step to
`metrics.jsonl`; evaluates val loss and bits per byte every `eval_every` steps and at the end; and
writes a self-contained model directory (weights, configs, loss plot, tokenizer copy).

Bits per byte makes models with different tokenizers comparable: nats/token * tokens/byte / ln 2.
The tokens/byte ratio comes from meta.json (the split's text tokens and UTF-8 bytes); BOS targets
are left out of that average because they stand for no bytes.

CLI (runs as a subprocess of the orchestrator; logs go to stderr, one JSON line of stats to stdout):

    python -m model.pretrain --tokens DIR --out DIR --config JSON [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model import checkpoint
from model.cli import parse_config, run_cli
from model.config import GPTConfig, PretrainConfig
from model.data import BatchLoader, TokenShards
from model.gpt import GPT, count_params
from model.runtime import MetricsLog, autocast, configure_threads, lr_at, make_adamw, plot_loss, resolve_device, set_lr
from model.tok import load_tokenizer

log = logging.getLogger(__name__)

VAL_SEED = 1_000_003  # fixed, so every evaluation (and every run) scores the same val windows


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokens_dir: Path,
    cfg: PretrainConfig,
    device: torch.device,
    bos_id: int,
    bytes_per_token: float,
) -> tuple[float, float]:
    """Mean val loss (nats/token over all targets) and bits per byte (over non-BOS targets)."""
    model.eval()
    loader = BatchLoader(tokens_dir, "val", cfg.batch_size, cfg.seq_len, seed=VAL_SEED, device=device)
    nats = torch.zeros((), device=device, dtype=torch.float64)
    text_nats = torch.zeros_like(nats)
    n = text_n = 0
    for _ in range(cfg.eval_batches):
        x, y = loader.next_batch()
        with autocast(device, cfg.dtype):
            logits, _ = model(x)
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
        text = y.flatten() != bos_id
        nats += nll.sum()
        text_nats += nll[text].sum()
        n += nll.numel()
        text_n += int(text.sum())
    model.train()
    val_loss = float(nats) / n
    bpb = float(text_nats) / max(1, text_n) / (math.log(2) * bytes_per_token)
    return val_loss, bpb


def pretrain(
    tokens_dir: Path | str,
    out_dir: Path | str,
    cfg: PretrainConfig,
    tokenizer_dir: Path | str | None = None,
    *,
    resume_from: Path | str | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train from scratch (or from ``resume_from``, a ``checkpoint/`` directory) and write a model directory.

    Exact resume: a run stopped after k steps (``stop_after=k`` saves ``out_dir/checkpoint``) and resumed from
    that checkpoint logs the very same losses for steps k+1..N as an uninterrupted run (tested on CPU): the
    checkpoint holds weights, AdamW moments, the torch RNG state and the loader's position; the schedule is a
    function of the step.

    Returns stats: params, steps, first_loss, final_loss (mean train loss of the last 10 steps),
    val_loss, val_bpb (None when the shards have no usable val split), tokens_per_s (training steps
    only, first step excluded as warm-up), seconds (whole call), device.
    """
    t_start = time.perf_counter()
    tokens_dir, out_dir = Path(tokens_dir), Path(out_dir)
    meta = TokenShards(tokens_dir)
    if tokenizer_dir is not None and load_tokenizer(tokenizer_dir).vocab_size != meta.vocab_size:
        raise ValueError(
            f"{tokenizer_dir} does not have the vocab_size {meta.vocab_size} of {tokens_dir}: "
            "pass the tokenizer that encoded the shards"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    threads = configure_threads(device)
    torch.manual_seed(cfg.seed)

    train_loader = BatchLoader(tokens_dir, "train", cfg.batch_size, cfg.seq_len, seed=cfg.seed, device=device)
    val_note = None
    try:
        BatchLoader(tokens_dir, "val", cfg.batch_size, cfg.seq_len, seed=VAL_SEED)  # fail early, not at step 100
        bytes_per_token = meta.bytes_per_text_token("val")
    except ValueError as e:
        val_note = str(e)
        log.warning("no validation: %s", e)

    gpt_cfg = GPTConfig.from_depth(cfg.depth, meta.vocab_size, cfg.seq_len)
    model = GPT(gpt_cfg).to(device)
    n_params = count_params(model)
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
    fwd = torch.compile(model) if cfg.compile else model
    log.info(
        "pretrain: %d params (%d non-embedding), %s, device %s, %d threads, %d train windows",
        n_params,
        count_params(model, exclude_embeddings=True),
        gpt_cfg.model_dump(),
        device,
        threads,
        len(train_loader),
    )

    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum
    losses: list[float] = []
    start_step = 1
    if resume_from is not None:
        state = checkpoint.load_training_state(resume_from, model, optimizer)
        train_loader.load_state_dict(state["loader"])
        losses, start_step = list(state["losses"]), int(state["step"]) + 1
        log.info("resumed from %s at step %d", resume_from, start_step)
    last_step = min(cfg.steps, stop_after) if stop_after else cfg.steps
    train_seconds = 0.0
    val_loss = val_bpb = None
    with MetricsLog(out_dir / "metrics.jsonl") as metrics:
        for step in range(start_step, last_step + 1):
            t0 = time.perf_counter()
            lr = lr_at(step - 1, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_frac)
            set_lr(optimizer, lr)
            loss_sum = torch.zeros((), device=device)
            for _ in range(cfg.grad_accum):
                x, y = train_loader.next_batch()
                with autocast(device, cfg.dtype):
                    _, loss = fwd(x, y)
                assert loss is not None
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            # clip_grad_norm_ with max_norm=inf only measures; the norm is worth logging either way.
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_loss = float(loss_sum) / cfg.grad_accum  # the one host sync per step
            dt = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise RuntimeError(f"train loss is {train_loss} at step {step}: lower lr or check the data")
            if step > start_step or cfg.steps == 1:  # the first step pays for allocation / compilation
                train_seconds += dt
            losses.append(train_loss)
            row: dict[str, Any] = {
                "step": step,
                "loss": round(train_loss, 5),
                "lr": lr,
                "grad_norm": round(float(grad_norm), 5),
                "tokens": step * tokens_per_step,
                "tokens_per_s": round(tokens_per_step / dt, 1),
                "elapsed_s": round(time.perf_counter() - t_start, 3),
            }
            if val_note is None and (step % cfg.eval_every == 0 or step == cfg.steps):
                val_loss, val_bpb = evaluate(fwd, tokens_dir, cfg, device, meta.bos_id, bytes_per_token)
                row.update(val_loss=round(val_loss, 5), val_bpb=round(val_bpb, 5))
            metrics.write(row)
            if step == last_step < cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                checkpoint.save_training_state(out_dir / "checkpoint", step, model, optimizer,
                                               train_loader.state_dict(), losses, cfg)
            if step == 1 or step % 10 == 0 or "val_loss" in row:
                val_text = f" val {row['val_loss']:.4f} bpb {row['val_bpb']:.3f}" if "val_loss" in row else ""
                log.info(
                    "step %d/%d loss %.4f lr %.2e%s %.0f tok/s",
                    step, cfg.steps, train_loss, lr, val_text, row["tokens_per_s"],
                )

    if last_step < cfg.steps:  # stopped early on purpose: the checkpoint is the output
        return {"steps": last_step, "checkpoint": str(out_dir / "checkpoint"), "losses": losses}
    checkpoint.save_model(out_dir, model, cfg)
    plot_loss(metrics.rows, out_dir / "loss.png", f"pretrain d{cfg.depth}, {n_params / 1e6:.2f}M params")
    if tokenizer_dir is not None:
        checkpoint.copy_tokenizer(tokenizer_dir, out_dir)

    timed_steps = max(1, last_step - start_step) if last_step > 1 else 1
    stats: dict[str, Any] = {
        "params": n_params,
        "steps": cfg.steps,
        "first_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "val_loss": val_loss,
        "val_bpb": val_bpb,
        "tokens_per_s": round(timed_steps * tokens_per_step / train_seconds, 1) if train_seconds > 0 else None,
        "train_tokens": cfg.steps * tokens_per_step,
        "seconds": round(time.perf_counter() - t_start, 3),
        "device": str(device),
    }
    if val_note is not None:
        stats["val_note"] = val_note
    return stats


def _main(argv: list[str] | None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m model.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", required=True, type=Path, help="token shards directory (meta.json, *.bin)")
    p.add_argument("--out", required=True, type=Path, help="output model directory")
    p.add_argument("--config", help="PretrainConfig as a JSON file or inline JSON object (default: defaults)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory to copy into OUT/tokenizer")
    p.add_argument("--resume", type=Path, help="resume exactly from this checkpoint/ directory")
    p.add_argument("--stop-after", type=int, help="stop after this step and save OUT/checkpoint")
    args = p.parse_args(argv)
    cfg = parse_config(args.config, PretrainConfig)
    return pretrain(args.tokens, args.out, cfg, args.tokenizer, resume_from=args.resume, stop_after=args.stop_after)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
