"""Training-step bench: tokens/s, MFU and peak memory of our pretraining step against Hugging Face's
`LlamaForCausalLM` of the same shapes, measured in the same run.

    .venv/bin/python bench/train.py --device cpu                         # smoke preset, ~1 min on 2 quiet cores
    python3 bench/train.py --device cuda                                 # d12 and d20 at seq 2048 (GPU machine)
    python3 bench/train.py --device cuda --presets d12 --steps 30 --batch-size 32

Rows per preset (each in a fresh spawned process, so peak memory and compile caches are per row):

* `lmpipe`: our `GPT` with what `model.pretrain` does on that device: bf16 autocast on CUDA (fp32 on CPU),
  `torch.compile` (on CUDA; `--compile` turns it on for CPU too), fused AdamW (CUDA), grad clipping at 1.0;
* `lmpipe eager`: the same without torch.compile (what compile buys);
* `lmpipe + loader`: `lmpipe` fed every step by `model.data.BatchLoader` (what `model.pretrain` and its
  memory-mapped token shards do) instead of one fixed batch of random ids: `--tokens DIR` (a tokens artifact),
  else synthetic shards (random ids, web-like document lengths). A second table gives its tokens/s against
  `lmpipe` and the loader's share of the row's time, timed in-process around `next_batch` (an upper bound
  of the cost: on CUDA the pinned copy is queued asynchronously; model.pretrain syncs once a step, so the
  host-side share is what it pays);
* peer `HF Llama`: transformers' `LlamaForCausalLM` built from a `LlamaConfig` with our shapes (width, SwiGLU
  hidden, heads, kv heads, vocabulary, tied embeddings, RMSNorm eps, RoPE theta), SDPA attention, the same
  autocast, optimizer and clipping, eager (transformers' default training path). Same parameter count, so
  the same FLOPs per token. The ratio column is tokens/s over the peer's. `--variants` can add
  `HF Llama compiled` (the peer under torch.compile too).

On a shared CPU each row runs `--repeats` times (default 3), interleaved with the other rows, and the median
run is shown. Tokens are random ids (seeded), so the rows other than the loader row are the model step alone.
`--warmup` untimed steps (compilation, allocator) come first;
then `--steps` timed steps, synchronised before the clock stops. MFU = tokens/s x FLOPs/token (6 x params +
12 x layers x width x seq_len, `model.runtime.flops_per_token`) / the device's dense bf16 peak
(`model.runtime.BF16_PEAK_FLOPS`, H100 SXM 989 TFLOP/s); none on CPU. Peak memory: the CUDA allocator's
peak on GPU, the process's peak RSS on CPU. On CUDA each row also records whether its attention runs on
SDPA's flash kernel ("flash" in the dtype column), checked with only that kernel allowed.

Needs transformers for the peer (`pip install -e .[bench]`; without it the peer rows are skipped, and said
so). On the lent GPU machine (no internet, torch preinstalled, no pydantic): see bench/train_gpu.sh.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# 32K (the tokenizer bench's size; model/config.py's parameter table uses it) on GPU; the demo's 4,096 on the
# CPU, where the smoke preset is what CI trains (a 32K head would be 90% of that model's FLOPs).
VOCAB = {"cuda": 32768, "cpu": 4096}
DEFAULT_BATCH = {"smoke": 8, "d6": 32, "d12": 16, "d20": 8, "d28": 4}  # windows per step (fit 80 GB at 2048)
VARIANTS = ("lmpipe", "lmpipe eager", "HF Llama", "lmpipe + loader")
OPTIONAL_VARIANTS = ("HF Llama compiled",)  # --variants only: the peer under torch.compile as well
LOADER = "lmpipe + loader"  # `lmpipe` fed by model.data.BatchLoader from token shards instead of fixed ids


def write_synthetic_shards(root: Path, vocab: int, tokens: int = 4_000_000, seed: int = 0) -> Path:
    """Token shards in the contract layout (docs/CONTRACTS.md) with random ids and web-like document lengths
    (geometric, mean 600 tokens: many short pages, a long tail), for the loader rows when no --tokens is given."""
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    dtype = "uint16" if vocab <= 65536 else "uint32"
    splits = {}
    for split, n in (("train", tokens), ("val", tokens // 20)):
        lengths = rng.geometric(1 / 600, size=n // 300)
        starts = np.cumsum(np.concatenate(([0], lengths)))
        starts = starts[starts < n].astype(np.int64)
        ids = rng.integers(3, vocab, n).astype(dtype)
        ids[starts] = 1  # BOS at every document start
        ids.tofile(root / f"{split}-00000.bin")
        np.save(root / f"{split}-00000.idx.npy", starts)
        splits[split] = {"files": [f"{split}-00000.bin"], "tokens": n, "docs": len(starts), "bytes": 4 * n}
    meta = {"dtype": dtype, "vocab_size": vocab, "bos_id": 1, "eos_id": 2, "splits": splits}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def build(variant: str, depth: int, seq_len: int, vocab: int) -> Any:
    """The model of one row on the CPU (moved to the device by the caller)."""
    from model.config import GPTConfig
    from model.gpt import GPT

    cfg = GPTConfig.from_depth(depth, vocab, seq_len)
    if not variant.startswith("HF Llama"):
        return GPT(cfg)
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        max_position_embeddings=cfg.seq_len, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(hf_cfg)
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    return model


def flash_attention_runs(model: Any, device: Any, seq_len: int, vocab: int) -> bool:
    """Whether this model's attention runs on SDPA's flash kernel (bf16, causal, GQA) on this GPU: a forward
    with only FLASH_ATTENTION allowed raises when SDPA would have to fall back to another kernel."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from model.runtime import autocast

    x = torch.randint(0, vocab, (1, seq_len), device=device)
    try:
        with torch.no_grad(), sdpa_kernel([SDPBackend.FLASH_ATTENTION]), autocast(device, "auto"):
            model(input_ids=x) if hasattr(model, "model") else model(x)
    except RuntimeError:
        return False
    return True


def run_row(variant: str, preset: str, device_name: str, seq_len: int, batch: int, steps: int, warmup: int,
            compile_cpu: bool, vocab: int, threads: int | None, tokens_dir: str | None = None) -> dict[str, Any]:
    """One row, in its own process: build, warm up, time `steps` training steps. The loader row draws every
    step's batch from `tokens_dir` with model.pretrain's BatchLoader (memmap, window gather, id check, pinned
    copy) and times that part on its own: its share of the step is the loader's cost, measured in-process."""
    import torch

    from model.config import MODEL_PRESETS, GPTConfig
    from model.gpt import count_params
    from model.runtime import (
        autocast, configure_threads, device_peak_flops, flops_per_token, make_adamw, peak_memory_bytes,
        reset_peak_memory,
    )

    device = torch.device(device_name)
    configure_threads(device)  # model.pretrain's policy: one thread per allowed core ...
    if threads:
        torch.set_num_threads(threads)  # ... unless told (on a loaded machine spinning OpenMP threads collapse)
    torch.manual_seed(0)
    depth = MODEL_PRESETS[preset]
    model = build(variant, depth, seq_len, vocab).to(device)
    params = count_params(model)  # unique parameters: tied weights once
    shape = GPTConfig.from_depth(depth, vocab, seq_len)  # the peer has the same shapes, so the same FLOPs
    fpt = flops_per_token(params, shape.n_layer, shape.n_embd, seq_len)
    flash = flash_attention_runs(model, device, seq_len, vocab) if device.type == "cuda" else None
    use_compile = variant in ("lmpipe", LOADER, "HF Llama compiled") and (device.type == "cuda" or compile_cpu)
    step_fn = torch.compile(model) if use_compile else model
    opt = make_adamw(model, 3e-4, 0.1, device)  # fused on CUDA, both for ours and the peer
    gen = torch.Generator().manual_seed(1)
    data = torch.randint(0, vocab, (batch, seq_len + 1), generator=gen).to(device)
    x, y = data[:, :-1], data[:, 1:]
    loader = None
    if variant == LOADER:
        from model.data import BatchLoader

        loader = BatchLoader(tokens_dir or "", "train", batch, seq_len, seed=0, device=device)
    loader_s = 0.0

    def step() -> float:
        nonlocal x, y, loader_s
        if loader is not None:
            t = time.perf_counter()
            x, y = loader.next_batch()  # the copy to the GPU is queued here; the step then waits on it
            loader_s += time.perf_counter() - t
        with autocast(device, "auto"):
            if variant.startswith("HF Llama"):
                logits = step_fn(input_ids=x).logits
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            else:
                _, loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    reset_peak_memory(device)
    loader_s = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t0
    tokens_per_s = steps * batch * seq_len / seconds
    peak = device_peak_flops(device)
    return {
        "preset": preset, "variant": variant, "params": params, "vocab": vocab, "seq_len": seq_len, "batch": batch,
        "steps": steps, "dtype": "bf16 autocast" if device.type == "cuda" else "fp32", "compile": use_compile,
        "fused_adamw": device.type == "cuda", "flash_attention": flash, "tokens_per_s": tokens_per_s,
        "flops_per_token": fpt,
        "tflops_per_s": tokens_per_s * fpt / 1e12, "mfu": tokens_per_s * fpt / peak if peak else None,
        "peak_mem_gib": peak_memory_bytes(device) / 2**30, "warmup_s": warmup_s, "last_loss": float(loss),
        "tokens": (tokens_dir or "synthetic shards") if loader is not None else "fixed random ids",
        "loader_share": loader_s / seconds if loader is not None else None,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
    }


def _child(args: tuple[Any, ...], out: Any) -> None:
    try:
        out.put(run_row(*args))
    except Exception as e:  # an OOM or a missing peer becomes a row that says so, not a lost run
        out.put({"preset": args[1], "variant": args[0], "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})


def run_in_child(*args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")  # fresh CUDA context and peak-RSS per row
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(args, q))
    p.start()
    row = q.get()
    p.join()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| preset | implementation | params | seq × batch | dtype | compile | tokens/s | runs | vs HF Llama "
             "| TFLOP/s | MFU | peak mem GiB |",
             "|---|---|---:|---|---|---|---:|---|---:|---:|---:|---:|"]
    peer = {r["preset"]: r["tokens_per_s"] for r in rows if r["variant"] == "HF Llama" and "error" not in r}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['variant']} | | | | | {r['error']} | | | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / peer[r['preset']]:.2f}x" if r["preset"] in peer else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (CPU)"
        dtype = r["dtype"] + {True: ", flash", False: ", NO flash", None: ""}[r.get("flash_attention")]
        lines.append(
            f"| {r['preset']} | {r['variant']} | {r['params'] / 1e6:.1f}M | {r['seq_len']} × {r['batch']} | "
            f"{dtype} | {'on' if r['compile'] else 'off'} | {r['tokens_per_s']:,.0f} | "
            f"{'/'.join(f'{t:,}' for t in r.get('runs_tokens_per_s', []))} | {ratio} | "
            f"{r['tflops_per_s']:.3g} | {mfu} | {r['peak_mem_gib']:.2f} |"
        )
    return "\n".join(lines)


def loader_table(rows: list[dict[str, Any]]) -> str:
    """The loader's cost per preset: the loader row against `lmpipe` on fixed ids (same compile setting, same
    run), and the loader's own share of the loader row's time (the steady, drift-free number)."""
    lines = ["| preset | tokens | tokens/s | vs fixed ids | loader share of step time |", "|---|---|---:|---:|---:|"]
    fixed = {r["preset"]: r for r in rows if r["variant"] == "lmpipe" and "error" not in r}
    for r in rows:
        if r["variant"] != LOADER or "error" in r:
            continue
        base = fixed.get(r["preset"])
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.3f}x" if base else "n/a"
        lines.append(f"| {r['preset']} | {r['tokens']} | {r['tokens_per_s']:,.0f} | {ratio} | "
                     f"{100 * r['loader_share']:.2f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--presets", help="comma-separated model.config.MODEL_PRESETS names (cuda: d12,d20; cpu: smoke)")
    p.add_argument("--steps", type=int, help="timed steps per row (cuda 20, cpu 5)")
    p.add_argument("--warmup", type=int, help="untimed steps first (cuda 5: compilation; cpu 2)")
    p.add_argument("--seq-len", type=int, help="tokens per window (cuda 2048, cpu 256)")
    p.add_argument("--batch-size", type=int, help=f"windows per step (default per preset: {DEFAULT_BATCH})")
    p.add_argument("--vocab", type=int, help=f"vocabulary size (default {VOCAB})")
    p.add_argument("--variants", help=f"from {','.join(VARIANTS + OPTIONAL_VARIANTS)} (default: {','.join(VARIANTS)}; "
                   "on CPU without --compile 'lmpipe eager' is left out, being the same as 'lmpipe')")
    p.add_argument("--compile", action="store_true",
                   help="on CPU too, compile the rows that compile on CUDA (slow to compile)")
    p.add_argument("--repeats", type=int, help="runs per row, interleaved; the median is shown (cuda 1, cpu 3)")
    p.add_argument("--threads", type=int, help="CPU threads per row (default: one per allowed core)")
    p.add_argument("--tokens", type=Path, help=f"token shards for the '{LOADER}' rows (a tokens artifact "
                   "directory); default: synthetic shards of random ids written to a temporary directory")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = p.parse_args(argv)

    import importlib.util

    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    gpu = device == "cuda"
    presets = (a.presets or ("d12,d20" if gpu else "smoke")).split(",")
    default_variants = VARIANTS if gpu or a.compile else ("lmpipe", "HF Llama", LOADER)
    variants = [v for v in (a.variants.split(",") if a.variants else default_variants) if v]
    unknown = set(variants) - set(VARIANTS) - set(OPTIONAL_VARIANTS)
    if unknown:
        print(f"error: unknown variants {sorted(unknown)}: use {','.join(VARIANTS + OPTIONAL_VARIANTS)}",
              file=sys.stderr)
        return 2
    vocab = a.vocab or VOCAB[device]
    if importlib.util.find_spec("transformers") is None and any(v.startswith("HF") for v in variants):
        print("transformers not installed: no HF Llama peer rows (pip install -e '.[bench]')", file=sys.stderr)
        variants = [v for v in variants if not v.startswith("HF")]
    steps, warmup = a.steps or (20 if gpu else 10), a.warmup if a.warmup is not None else (5 if gpu else 2)
    seq_len = a.seq_len or (2048 if gpu else 256)
    repeats = a.repeats or (1 if gpu else 3)
    tokens_dir = str(a.tokens) if a.tokens else None
    if LOADER in variants and tokens_dir is None:
        import tempfile

        tokens_dir = str(write_synthetic_shards(Path(tempfile.mkdtemp(prefix="bench-train-")), vocab))
    tokens_label = f"real: {a.tokens.name}" if a.tokens else "synthetic shards (random ids)"
    rows = []
    t0 = time.perf_counter()
    for preset in presets:
        batch = a.batch_size or DEFAULT_BATCH[preset]
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for _ in range(repeats):  # interleaved (A B A B ...), so a burst of load hits every variant alike
            for variant in variants:
                row = run_in_child(variant, preset, device, seq_len, batch, steps, warmup, a.compile, vocab, a.threads,
                                   tokens_dir)
                if variant == LOADER and "error" not in row:
                    row["tokens"] = tokens_label
                print(json.dumps(row), file=sys.stderr, flush=True)
                runs[variant].append(row)
        for variant in variants:
            ok = sorted((r for r in runs[variant] if "error" not in r), key=lambda r: r["tokens_per_s"])
            spread = [round(r["tokens_per_s"]) for r in ok]
            rows.append({**ok[len(ok) // 2], "runs_tokens_per_s": spread} if ok else runs[variant][0])  # the median
    first = next((r for r in rows if "error" not in r), {})
    print(f"bench/train.py on {first.get('device_name', device)}, torch {first.get('torch')}, vocab {vocab}, "
          f"{steps} timed steps after {warmup} warm-up, median of {repeats} interleaved run(s) per row, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table(rows))
    if any(r["variant"] == LOADER for r in rows):
        print(f"\nLoader cost ('{LOADER}': batches from token shards through model.data.BatchLoader):\n")
        print(loader_table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
