"""Pretraining: next-token prediction on token shards.

`pretrain(tokens_dir, out_dir, cfg, tokenizer_dir)` trains a `GPT` sized by `cfg.depth` with AdamW (fused
on CUDA), bf16 autocast on CUDA, optional torch.compile, gradient clipping and gradient accumulation; logs
every step to `metrics.jsonl`; evaluates val loss and bits per byte every `eval_every` steps and at the end; and
writes a self-contained model directory (weights, configs, loss plot, tokenizer copy).

Bits per byte makes models with different tokenizers comparable: nats/token * tokens/byte / ln 2.
The tokens/byte ratio comes from meta.json (the split's text tokens and UTF-8 bytes); BOS targets
are left out of that average because they stand for no bytes.

Metrics per step (metrics.jsonl, and TensorBoard event files in OUT/tb when the optional `tensorboard`
package is installed): loss, lr, grad norm, tokens/s, achieved FLOP/s, MFU and peak memory. FLOPs per
token are 6 * matmul parameters + 12 * layers * width * seq_len (attention); MFU divides the achieved
FLOP/s by the bf16 peak of all devices (a table of known GPUs, or `peak_flops`), so it is None on CPU
unless a peak is configured. Peak memory is the CUDA allocator's peak, or the peak RSS on CPU.

Data parallel: under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP (nccl on CUDA, gloo on CPU)
and every rank reads a disjoint slice of the train windows (see model.data). Gradients are averaged
over ranks, so a run with nproc=N is the same as one process training a batch N times larger (global
batch = nproc * batch_size * grad_accum windows, the lr is not rescaled). Every rank scores a slice of
the val windows (sums all-reduced); only rank 0 writes files (metrics, checkpoints, the model directory).
Its loader state is every rank's, so a checkpoint resumes under the same nproc. `nproc` in the config
must equal torchrun's processes per node, and nnodes * nproc its world size.

Several nodes (`nnodes` > 1, model/launch.py): node 0 runs with the full arguments (the DAG, or by hand), every
other node with `python -m model.launch ... --node-rank K`, which starts `model.pretrain --join`: its ranks
take the arguments from rank 0 and check that they see rank 0's token shards. The loss curve equals one node
running the same global batch (tested with two gloo "nodes" on 127.0.0.1).

FSDP (`parallel="fsdp"`, for d20/d28 when a replica + AdamW does not fit one device): FSDP2 `fully_shard` on
every block and the root (`model.runtime.shard_model`), bf16 all-gathers with fp32 gradient reduction on CUDA.
Same data, schedule and losses as DDP (tested on CPU with gloo); the difference: every save first gathers
the full weights and AdamW moments onto rank 0's CPU, so checkpoints and model directories have the
single-process format (a checkpoint resumes under DDP or FSDP, tested).
With nproc=1 `parallel` is ignored.

Checkpoints and resume: `OUT/checkpoint` (model.checkpoint: weights, AdamW moments, RNG, loader position, step,
losses) is saved every `checkpoint_every` steps and every `checkpoint_minutes` minutes (default 30), swapped in
crash-safely and removed once the model directory is written. `--resume-latest` (what the DAG passes; the DAG
keeps the build directory across kills and failures) continues from the last complete one in OUT: a run killed
at any moment and run again ends with the same weights, bit for bit on CPU, as one never stopped
(tests/test_train_resume.py).

LR schedule: linear warmup, then cosine to `min_lr_frac` or WSD (`schedule="wsd"`: hold, then a linear decay
over the last `decay_frac`), a pure function of the step (so resume needs no scheduler state).

CLI (runs as a subprocess of the orchestrator; logs go to stderr, one JSON line of stats to stdout):

    python -m model.pretrain --tokens DIR --out DIR --config JSON [--tokenizer DIR] [--resume-latest]
    python -m torch.distributed.run --standalone --nproc_per_node 2 -m model.pretrain ... \
        --config '{"nproc": 2}'            # or '{"nproc": 8, "parallel": "fsdp", "depth": 28}'
    python -m torch.distributed.run --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend static \
        --rdzv-endpoint node001:29500 -m model.pretrain ... --config '{"nproc": 8, "nnodes": 2}'   # node 0
    python -m model.launch --nnodes 2 --node-rank 1 --nproc-per-node 8 --rdzv-endpoint node001:29500  # node 1
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import math
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from model import checkpoint
from model.cli import parse_config, run_cli
from model.config import GPTConfig, PretrainConfig
from model.data import BatchLoader, TokenShards
from model.gpt import GPT, count_params
from model.launch import JOIN_FLAG, exchange_args
from model.runtime import (
    MetricsLog,
    TensorBoardLog,
    autocast,
    configure_threads,
    device_peak_flops,
    flops_per_token,
    init_distributed,
    lr_at,
    make_adamw,
    peak_memory_bytes,
    plot_loss,
    reset_peak_memory,
    set_lr,
    shard_model,
    use_bf16,
)
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
    batch_size: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, float]:
    """Mean val loss (nats/token over all targets) and bits per byte (over non-BOS targets), on
    `eval_batches` batches of `batch_size` (default cfg.batch_size) fixed val windows.

    Under torchrun every rank scores its 1/world_size slice of each batch and the sums are all-reduced,
    so the result is the same set of windows as one process scoring whole batches (and FSDP's forward,
    which needs every rank, works)."""
    model.eval()
    batch = batch_size or cfg.batch_size
    if batch % world_size:
        raise ValueError(f"val batch {batch} does not split over {world_size} ranks")
    loader = BatchLoader(tokens_dir, "val", batch, cfg.seq_len, seed=VAL_SEED, device=device)
    per_rank = batch // world_size
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # nats, text nats, targets, text targets
    for _ in range(cfg.eval_batches):
        x, y = loader.next_batch()
        x, y = x[rows], y[rows]
        with autocast(device, cfg.dtype):
            logits, _ = model(x)
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").double()
        text = y.flatten() != bos_id
        count = torch.tensor(float(nll.numel()), device=device, dtype=torch.float64)
        sums += torch.stack((nll.sum(), nll[text].sum(), count, text.sum().double()))
    if world_size > 1:
        dist.all_reduce(sums)
    model.train()
    nats, text_nats, n, text_n = sums.tolist()
    val_loss = nats / n
    bpb = text_nats / max(1.0, text_n) / (math.log(2) * bytes_per_token)
    return val_loss, bpb


def pretrain(
    tokens_dir: Path | str,
    out_dir: Path | str,
    cfg: PretrainConfig,
    tokenizer_dir: Path | str | None = None,
    *,
    resume_from: Path | str | None = None,
    stop_after: int | None = None,
) -> dict[str, Any] | None:
    """Train from scratch (or from ``resume_from``, a ``checkpoint/`` directory) and write a model directory.

    Exact resume: a run stopped after k steps (``stop_after=k`` saves ``out_dir/checkpoint``) and resumed from
    that checkpoint logs the very same losses for steps k+1..N as an uninterrupted run (tested on CPU): the
    checkpoint holds weights, AdamW moments, the torch RNG state and the loader's position; the schedule is a
    function of the step.

    Returns stats: params, steps, first_loss, final_loss (mean train loss of the last 10 steps),
    val_loss, val_bpb (None when the shards have no usable val split), tokens_per_s (training steps
    only, first step excluded as warm-up, all ranks together), flops_per_token, flops_per_s, mfu
    (None without a known peak), peak_memory_bytes (rank 0), world_size, seconds (whole call), device,
    resumed_from_step (the checkpoint's step, None from scratch; a resume into ``resume_from``'s own directory
    keeps that directory's metrics.jsonl rows up to the step, so the log covers the whole run).
    Under torchrun it returns None on ranks other than 0.
    """
    dist_info, device = init_distributed(cfg.device)
    try:
        return _pretrain(tokens_dir, out_dir, cfg, tokenizer_dir, resume_from, stop_after, dist_info, device)
    finally:
        if dist_info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _pretrain(
    tokens_dir: Path | str,
    out_dir: Path | str,
    cfg: PretrainConfig,
    tokenizer_dir: Path | str | None,
    resume_from: Path | str | None,
    stop_after: int | None,
    dist_info: Any,
    device: torch.device,
) -> dict[str, Any] | None:
    t_start = time.perf_counter()
    world, is_main = dist_info.world_size, dist_info.is_main
    if world != cfg.nproc * cfg.nnodes or (dist_info.enabled and dist_info.local_world_size != cfg.nproc):
        raise ValueError(
            f"config nnodes={cfg.nnodes} x nproc={cfg.nproc} but {world} process(es) running "
            f"({dist_info.local_world_size} on this node): launch nproc > 1 with `python -m torch.distributed.run "
            f"--standalone --nproc_per_node {cfg.nproc} -m model.pretrain ...`, several nodes as model/launch.py says"
        )
    tokens_dir, out_dir = Path(tokens_dir), Path(out_dir)
    meta = TokenShards(tokens_dir)
    if tokenizer_dir is not None:
        tok = load_tokenizer(tokenizer_dir)
        theirs = (tok.vocab_size, tok.bos_id, tok.eos_id)
        if theirs != (meta.vocab_size, meta.bos_id, meta.eos_id):
            raise ValueError(
                f"{tokenizer_dir} (vocab_size, bos_id, eos_id) = {theirs} but {tokens_dir}/meta.json says "
                f"{(meta.vocab_size, meta.bos_id, meta.eos_id)}: the shards were written by another tokenizer; "
                "pass the tokenizer that encoded them"
            )
        if meta.tokenizer_sha256 is not None:
            digest = hashlib.sha256((Path(tokenizer_dir) / "tokenizer.model").read_bytes()).hexdigest()
            if digest != meta.tokenizer_sha256:
                raise ValueError(
                    f"{tokenizer_dir}/tokenizer.model (sha256 {digest[:12]}) is not the tokenizer that wrote "
                    f"{tokens_dir} (sha256 {meta.tokenizer_sha256[:12]} in meta.json): pass that tokenizer"
                )
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    threads = configure_threads(device, dist_info.local_world_size)
    torch.manual_seed(cfg.seed)
    reset_peak_memory(device)

    train_loader = BatchLoader(
        tokens_dir, "train", cfg.batch_size, cfg.seq_len, seed=cfg.seed, device=device,
        rank=dist_info.rank, world_size=world,
    )
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
    n_non_embedding = count_params(model, exclude_embeddings=True)
    embedding_params = 0 if gpt_cfg.tie_embeddings else model.tok_emb.weight.numel()
    fpt = flops_per_token(n_params, gpt_cfg.n_layer, gpt_cfg.n_embd, cfg.seq_len, embedding_params)
    peak = device_peak_flops(device, cfg.peak_flops)
    fsdp = dist_info.enabled and cfg.parallel == "fsdp"
    log.info(
        "pretrain: %d params (%d non-embedding), %s, device %s, %d threads, %d rank(s) (%s), %d train windows "
        "per rank, %.3g FLOPs/token, peak %s FLOP/s per device",
        n_params,
        n_non_embedding,
        gpt_cfg.model_dump(),
        device,
        threads,
        world,
        cfg.parallel if dist_info.enabled else "single process",
        len(train_loader),
        fpt,
        f"{peak:.3g}" if peak else "unknown (no MFU)",
    )

    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * world
    losses: list[float] = []
    start_step = 1
    resumed: dict[str, Any] | None = None
    if resume_from is not None:  # weights go in before DDP/FSDP wrap the model; every rank reads the same files
        resumed = checkpoint.read_training_state(resume_from, model)
        train_loader.load_state_dict(resumed["loader"])
        losses, start_step = list(resumed["losses"]), int(resumed["step"]) + 1
    ddp: DistributedDataParallel | None = None
    if fsdp:
        shard_model(model, use_bf16(device, cfg.dtype))
    elif dist_info.enabled:
        # broadcast_buffers=False: the RoPE tables are derived data, the same on every rank.
        ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    # The optimizer is made after sharding: under FSDP it must see the sharded parameters (DTensors).
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
    if resumed is not None:
        checkpoint.load_optimizer_state(model, optimizer, resumed["optimizer"])
        log.info("resumed from %s at step %d", resume_from, start_step)
    train_module: torch.nn.Module = ddp if ddp is not None else model
    fwd = torch.compile(train_module) if cfg.compile else train_module
    # DDP's forward is for training steps (it syncs gradients), so evaluation runs the bare model.
    eval_fwd = model if ddp is not None else fwd
    last_step = min(cfg.steps, stop_after) if stop_after else cfg.steps
    train_seconds = loader_seconds = 0.0  # loader: host time in next_batch (memmap gather, id check, copy)
    val_loss = val_bpb = None
    carried = checkpoint.carried_metrics(out_dir, resume_from, start_step - 1) if is_main else []
    if is_main:  # event files of an earlier attempt in this directory: the carried rows are logged again
        shutil.rmtree(out_dir / "tb", ignore_errors=True)
    metrics = MetricsLog(out_dir / "metrics.jsonl") if is_main else None
    tb = TensorBoardLog(out_dir / "tb") if is_main else None
    for old_row in carried:
        assert metrics is not None and tb is not None
        metrics.write(old_row)
        tb.write(old_row, old_row["step"])
    clock = checkpoint.SaveClock(cfg.checkpoint_every, cfg.checkpoint_minutes)
    try:
        for step in range(start_step, last_step + 1):
            t0 = time.perf_counter()
            lr = lr_at(step - 1, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_frac, cfg.schedule, cfg.decay_frac)
            set_lr(optimizer, lr)
            loss_sum = torch.zeros((), device=device)
            step_load = 0.0
            for micro in range(cfg.grad_accum):
                t_load = time.perf_counter()
                x, y = train_loader.next_batch()
                step_load += time.perf_counter() - t_load
                # Gradients are reduced across ranks on the last micro-batch only.
                sync = micro == cfg.grad_accum - 1
                if fsdp:
                    model.set_requires_gradient_sync(sync)  # type: ignore[operator]
                with ddp.no_sync() if ddp is not None and not sync else contextlib.nullcontext():
                    with autocast(device, cfg.dtype):
                        _, loss = fwd(x, y)
                    assert loss is not None
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            # clip_grad_norm_ with max_norm=inf only measures; the norm is worth logging either way.
            # Under FSDP the norm is a DTensor over all shards: full_tensor() is the global norm.
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            if hasattr(grad_norm, "full_tensor"):
                grad_norm = grad_norm.full_tensor()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            time_due = clock.time_due()
            if dist_info.enabled:
                # SUM (gloo has no AVG); every rank then logs the global mean. The second entry counts the ranks
                # whose save clock ran out, so all ranks agree on a time-based save (a collective under FSDP).
                both = torch.stack((loss_sum, torch.tensor(float(time_due), device=device)))
                dist.all_reduce(both)
                loss_sum, time_due = both[0] / world, bool(both[1] > 0)
            train_loss = float(loss_sum) / cfg.grad_accum  # the one host sync per step
            dt = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise RuntimeError(f"train loss is {train_loss} at step {step}: lower lr or check the data")
            if step > start_step or cfg.steps == 1:  # the first step pays for allocation / compilation
                train_seconds += dt
                loader_seconds += step_load
            losses.append(train_loss)
            flops_per_s = tokens_per_step * fpt / dt
            row: dict[str, Any] = {
                "step": step,
                "loss": round(train_loss, 5),
                "lr": lr,
                "grad_norm": round(float(grad_norm), 5),
                "tokens": step * tokens_per_step,
                "tokens_per_s": round(tokens_per_step / dt, 1),
                "flops_per_s": float(f"{flops_per_s:.4g}"),
                "mfu": float(f"{flops_per_s / (peak * world):.4g}") if peak else None,
                "peak_mem_mb": round(peak_memory_bytes(device) / 2**20, 1),
                "elapsed_s": round(time.perf_counter() - t_start, 3),
            }
            if val_note is None and (step % cfg.eval_every == 0 or step == cfg.steps):
                # The global batch's worth of val windows (the same set as a 1-process run), split over the ranks.
                val_loss, val_bpb = evaluate(
                    eval_fwd, tokens_dir, cfg, device, meta.bos_id, bytes_per_token, cfg.batch_size * world,
                    dist_info.rank, world,
                )
                row.update(val_loss=round(val_loss, 5), val_bpb=round(val_bpb, 5))
            # No save at the last step: the model directory is written right after it.
            save_due = step == last_step < cfg.steps or (step < cfg.steps and (clock.step_due(step) or time_due))
            if save_due and (is_main or fsdp):
                weights = checkpoint.model_state(model)  # collectives under FSDP: every rank takes part
                optim_state = checkpoint.optimizer_state(model, optimizer)
                if is_main:
                    checkpoint.save_training_state(out_dir / checkpoint.CHECKPOINT, step, model, weights,
                                                   optim_state, train_loader.state_dict(), losses, cfg)
            if save_due:
                clock.saved()
            if not is_main:
                continue
            assert metrics is not None and tb is not None
            metrics.write(row)
            tb.write(row, step)
            if step == 1 or step % 10 == 0 or "val_loss" in row:
                val_text = f" val {row['val_loss']:.4f} bpb {row['val_bpb']:.3f}" if "val_loss" in row else ""
                log.info(
                    "step %d/%d loss %.4f lr %.2e%s %.0f tok/s",
                    step, cfg.steps, train_loss, lr, val_text, row["tokens_per_s"],
                )
    finally:
        if metrics is not None:
            metrics.close()
        if tb is not None:
            tb.close()
    # A collective under FSDP (every rank gathers); elsewhere rank 0's own weights.
    final_weights = checkpoint.model_state(model) if last_step == cfg.steps and (is_main or fsdp) else None
    if dist_info.enabled:
        dist.barrier()  # rank 0 may still be writing its last checkpoint
    if not is_main:
        return None
    assert metrics is not None
    if last_step < cfg.steps:  # stopped early on purpose: the checkpoint is the output
        return {"steps": last_step, "checkpoint": str(out_dir / checkpoint.CHECKPOINT), "losses": losses}
    checkpoint.save_model(out_dir, model, cfg, state=final_weights)
    checkpoint.remove_checkpoints(out_dir)  # the model directory is complete: resume state is no longer needed
    plot_loss(metrics.rows, out_dir / "loss.png", f"pretrain d{cfg.depth}, {n_params / 1e6:.2f}M params")
    if tokenizer_dir is not None:
        checkpoint.copy_tokenizer(tokenizer_dir, out_dir)

    timed_steps = max(1, last_step - start_step) if last_step > 1 else 1
    tokens_per_s = timed_steps * tokens_per_step / train_seconds if train_seconds > 0 else None
    stats: dict[str, Any] = {
        "params": n_params,
        "steps": cfg.steps,
        "first_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "val_loss": val_loss,
        "val_bpb": val_bpb,
        "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s else None,
        "flops_per_token": fpt,
        "flops_per_s": float(f"{tokens_per_s * fpt:.4g}") if tokens_per_s else None,
        "mfu": float(f"{tokens_per_s * fpt / (peak * world):.4g}") if tokens_per_s and peak else None,
        "peak_memory_bytes": peak_memory_bytes(device),
        # The loader's share of the timed steps (rank 0's host time in next_batch): bench/train.py's loader row.
        "loader_share": round(loader_seconds / train_seconds, 5) if train_seconds > 0 else None,
        "world_size": world,
        "parallel": cfg.parallel if dist_info.enabled else None,
        "tensorboard": str(out_dir / "tb") if tb is not None and tb.enabled else None,
        "train_tokens": cfg.steps * tokens_per_step,
        "seconds": round(time.perf_counter() - t_start, 3),
        "device": str(device),
        # The step of the checkpoint this run continued from (None: from scratch); the seconds and speeds
        # above count this run's steps only.
        "resumed_from_step": start_step - 1 if resumed is not None else None,
    }
    if val_note is not None:
        stats["val_note"] = val_note
    return stats


def _main(argv: list[str] | None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(prog="python -m model.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=Path, help="token shards directory (meta.json, *.bin)")
    p.add_argument("--out", type=Path, help="output model directory")
    p.add_argument("--config", help="PretrainConfig as a JSON file or inline JSON object (default: defaults)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory to copy into OUT/tokenizer")
    p.add_argument("--resume", type=Path, help="resume exactly from this checkpoint/ directory")
    p.add_argument("--resume-latest", action="store_true", help="resume from the last complete checkpoint in "
                   "OUT (a re-run of a killed or failed run, as the DAG does); from scratch when there is none")
    p.add_argument("--stop-after", type=int, help="stop after this step and save OUT/checkpoint")
    p.add_argument(JOIN_FLAG, action="store_true", help="a node > 0 of a multi-node run: take every other "
                   "argument from global rank 0 (see model/launch.py)")
    args = p.parse_args(argv)
    run: dict[str, Any] | None = None
    if not args.join:
        if args.tokens is None or args.out is None:
            p.error("--tokens and --out are required (or --join on a node > 0 of a multi-node run)")
        # The config travels resolved (a file named by --config need not exist on the other nodes).
        parsed = parse_config(args.config, PretrainConfig)
        config = parsed.model_dump(mode="json")
        resume = args.resume or (checkpoint.latest_checkpoint(args.out) if args.resume_latest else None)
        run = {"tokens": str(args.tokens), "out": str(args.out), "config": config,
               "checkpoint_minutes": parsed.checkpoint_minutes,  # not in model_dump (not in the artifact id)
               "tokenizer": args.tokenizer and str(args.tokenizer), "resume": resume and str(resume),
               "stop_after": args.stop_after}
    if args.join or int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1:  # several nodes: rank 0's arguments win
        run = exchange_args(run)
    assert run is not None
    cfg = PretrainConfig.model_validate({**run["config"], "checkpoint_minutes": run["checkpoint_minutes"]})
    return pretrain(run["tokens"], run["out"], cfg, run["tokenizer"], resume_from=run["resume"],
                    stop_after=run["stop_after"])


def main(argv: list[str] | None = None) -> int:
    """The CLI. Under torchrun the process ends with os._exit once stdout and stderr are flushed: DDP keeps
    a reference to the process group that destroy_process_group cannot drop (its gloo worker threads
    outlive it: checked with torch 2.13), and tearing those down in interpreter finalization aborts a
    rank now and then ("terminate called without an active exception", SIGABRT; 1 in 30 runs of a
    2-rank CPU job on a loaded machine). Every file of the run is closed by then."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:  # not under torchrun
        return run_cli(_main, argv)
    try:
        code = run_cli(_main, argv)
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
