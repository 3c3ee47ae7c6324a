"""The eval stage: score a pretrain or SFT model directory on held-out text and on the multiple-choice suite.

* Bits per byte on the shipped reference texts of each language (evals/data/reference; never in a corpus):
  every token after BOS is predicted once, in windows of the model's seq_len, and the summed loss is divided by
  ln 2 times the texts' UTF-8 bytes, so models with different tokenizers compare.
* Multiple choice, 0-shot, cloze form: log P(choice | context) summed over the choice's tokens. ``acc`` picks
  the highest sum, ``acc_norm`` the highest sum per character of the choice (lm-eval's acc_norm), and
  ``centred`` = (acc - chance) / (1 - chance) is averaged over tasks (DCLM's CORE idea), overall and per
  language. Tokens follow lm-eval's split: the continuation is ``encode(context + choice)`` after the first
  ``len(encode(context))`` tokens, so the two harnesses score the same ids.
* An item whose text holds a token the model cannot read (``<unk>``, or an id past the model's vocabulary) is
  counted as ``unencodable`` and not scored; a malformed item is counted and named (evals/tasks.py).

Output in ``out_dir``: ``eval.json`` (everything), ``eval.md`` (the table), ``eval.png`` (the plot).

Run: python -m evals.harness --model DIR --out DIR [--max-items N] [--tasks a,b]
The DAG calls ``run_eval(model_dir, out_dir, cfg) -> stats``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from evals.config import EvalConfig
from evals.tasks import Task, load_suite, reference_texts

LN2 = math.log(2)


@dataclass
class Scorer:
    """A model and its tokenizer, loaded once; scores continuations and texts."""

    model: torch.nn.Module
    tok: Any
    device: torch.device
    batch_size: int = 32
    window: int | None = None  # tokens a sequence may hold (None: the model's pretraining seq_len)

    @classmethod
    def load(cls, model_dir: Path | str, device: str = "auto", batch_size: int = 32,
             window: int | None = None) -> "Scorer":
        from model import checkpoint
        from model.runtime import resolve_device
        from model.tok import load_tokenizer

        model_dir = Path(model_dir)
        dev = resolve_device(device)
        tok = load_tokenizer(model_dir / checkpoint.TOKENIZER_DIR)
        return cls(checkpoint.load_model(model_dir, dev).eval(), tok, dev, batch_size, window)

    @property
    def max_len(self) -> int:
        return self.window or int(self.model.config.seq_len)

    def readable(self, ids: list[int]) -> bool:
        unk = self.tok.special_tokens.get("unk")
        vocab = self.model.config.vocab_size
        return all(i != unk and 0 <= i < vocab for i in ids)

    def split(self, context: str, choice: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) the way lm-eval splits them (trailing context whitespace moves over)."""
        stripped = context.rstrip()
        choice = context[len(stripped):] + choice
        ctx = self.tok.encode(stripped)
        whole = self.tok.encode(stripped + choice)
        return ctx, whole[len(ctx):]

    @torch.no_grad()
    def loglikelihoods(self, requests: list[tuple[list[int], list[int]]]) -> list[float]:
        """Sum of log P(continuation | BOS + context) for each (context, continuation) pair. Long inputs keep
        their last max_len tokens (the continuation and as much context as fits; a continuation longer than
        max_len is scored on its last max_len tokens)."""
        seqs = []
        for ctx, cont in requests:
            full = [self.tok.bos_id, *ctx, *cont][-(self.max_len + 1):]
            seqs.append((full, min(len(cont), len(full) - 1)))
        out = [0.0] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))  # similar lengths share a batch
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(seqs[i][0]) for i in idx) - 1
            x = torch.full((len(idx), width), self.tok.pad_id, dtype=torch.long)
            for row, i in enumerate(idx):
                ids = seqs[i][0][:-1]
                x[row, :len(ids)] = torch.tensor(ids)
            logp = F.log_softmax(self.model(x.to(self.device))[0].float(), dim=-1).cpu()
            for row, i in enumerate(idx):
                full, n = seqs[i]
                targets = torch.tensor(full[-n:])
                pos = torch.arange(len(full) - 1 - n, len(full) - 1)
                out[i] = float(logp[row, pos, targets].sum())
        return out

    @torch.no_grad()
    def nats(self, texts: list[str]) -> float:
        """Summed loss in nats over every token of every text after its BOS, each text cut into
        non-overlapping windows of max_len predictions, windows scored in batches."""
        windows = []
        for text in texts:
            ids = [self.tok.bos_id, *self.tok.encode(text)]
            windows += [ids[s:s + self.max_len + 1] for s in range(0, len(ids) - 1, self.max_len)]
        total = 0.0
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start:start + self.batch_size]
            width = max(len(w) for w in batch)
            y = torch.full((len(batch), width), -100, dtype=torch.long)  # -100: padding, not a target
            x = torch.full((len(batch), width), self.tok.pad_id, dtype=torch.long)
            for row, w in enumerate(batch):
                x[row, :len(w)] = torch.tensor(w)
                y[row, :len(w) - 1] = torch.tensor(w[1:])
            logits = self.model(x[:, :-1].to(self.device))[0].float()
            total += float(F.cross_entropy(logits.flatten(0, 1), y[:, :-1].flatten().to(self.device),
                                           ignore_index=-100, reduction="sum"))
        return total


def score_task(scorer: Scorer, task: Task) -> dict[str, Any]:
    requests, owners, unencodable = [], [], 0
    for n, item in enumerate(task.items):
        pairs = [scorer.split(c, ch) for c, ch in zip(item.contexts, item.choices)]
        if not all(scorer.readable(c + k) and k for c, k in pairs):
            unencodable += 1
            continue
        requests += pairs
        owners.append(n)
    lls = iter(scorer.loglikelihoods(requests))
    correct = correct_norm = 0
    for n in owners:
        item = task.items[n]
        ll = [next(lls) for _ in item.choices]
        norm = [v / len(c) for v, c in zip(ll, item.choices)]
        correct += max(range(len(ll)), key=ll.__getitem__) == item.label
        correct_norm += max(range(len(norm)), key=norm.__getitem__) == item.label
    scored = len(owners)
    acc, acc_norm = correct / max(1, scored), correct_norm / max(1, scored)
    chance = Task(task.name, task.lang, [task.items[n] for n in owners]).chance
    return {
        "lang": task.lang, "items": scored, "acc": acc, "acc_norm": acc_norm, "chance": chance,
        # binomial standard error of acc: what a difference between two models must exceed to mean anything
        "acc_stderr": math.sqrt(acc * (1 - acc) / scored) if scored else 0.0,
        "centred": centred(acc, chance), "centred_norm": centred(acc_norm, chance),
        "malformed": task.malformed, "malformed_items": task.reasons, "unencodable": unencodable,
    }


def centred(acc: float, chance: float) -> float:
    """0 at chance, 1 at perfect: (acc - chance) / (1 - chance)."""
    return (acc - chance) / (1 - chance) if chance < 1 else 0.0


def aggregate(tasks: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    scored = {k: v for k, v in tasks.items() if v["items"]}
    for key in ("centred", "centred_norm"):
        if scored:
            out[key] = sum(v[key] for v in scored.values()) / len(scored)
        for lang in sorted({v["lang"] for v in scored.values()}):
            vals = [v[key] for v in scored.values() if v["lang"] == lang]
            out[f"{key}_{lang}"] = sum(vals) / len(vals)
    return out


def reference_bpb(scorer: Scorer) -> dict[str, float]:
    out = {}
    for lang, texts in reference_texts().items():
        out[lang] = scorer.nats(texts) / (LN2 * sum(len(t.encode("utf-8")) for t in texts))
    return out


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    """eval.md (one row per task, the aggregate, bits per byte) and eval.png (centred accuracy per task)."""
    rows = ["| task | lang | items | acc ± s.e. | acc_norm | chance | centred | malformed | unencodable |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in result["tasks"].items():
        acc = f"{t['acc']:.3f} ± {t['acc_stderr']:.3f}"
        rows.append(f"| {name} | {t['lang']} | {t['items']} | {acc} | {t['acc_norm']:.3f} | "
                    f"{t['chance']:.3f} | {t['centred']:+.3f} | {t['malformed']} | {t['unencodable']} |")
    agg = ", ".join(f"{k} {v:+.3f}" for k, v in result["aggregate"].items())
    bpb = ", ".join(f"{k} {v:.3f}" for k, v in result["bpb"].items())
    text = "\n".join(["# Eval", "", *rows, "", f"**Centred accuracy**: {agg or 'n/a'}", "",
                      f"**Reference bits per byte**: {bpb or 'n/a'}", "", "![centred accuracy per task](eval.png)", ""])
    (out_dir / "eval.md").write_text(text, encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["tasks"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) + 2), 4))
    vals = [result["tasks"][n]["centred"] for n in names]
    colors = ["tab:blue" if result["tasks"][n]["lang"] == "en" else "tab:red" for n in names]
    ax.bar(range(len(names)), vals, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("centred accuracy (0 = chance)")
    ax.set_title(f"0-shot cloze (blue en, red zh); bits/byte: {bpb or 'n/a'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "eval.png", dpi=100)
    plt.close(fig)


def eval_markdown(out_dir: Path | str, inline_plot: bool = True) -> str | None:
    """eval.md of an eval artifact, its plot inlined as a data URI (the Prefect UI cannot load local files)."""
    out_dir = Path(out_dir)
    if not (out_dir / "eval.md").exists():
        return None
    md = (out_dir / "eval.md").read_text(encoding="utf-8")
    if inline_plot and (out_dir / "eval.png").exists():
        import base64

        data = base64.b64encode((out_dir / "eval.png").read_bytes()).decode("ascii")
        md = md.replace("](eval.png)", f"](data:image/png;base64,{data})")
    return md


def run_eval(model_dir: Path | str, out_dir: Path | str, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Evaluate the model in `model_dir`, write eval.json/eval.md/eval.png to `out_dir`, return the stats."""
    cfg = cfg or EvalConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tasks = load_suite(cfg.tasks, cfg.extra_tasks, cfg.max_items)
    scorer = Scorer.load(model_dir, cfg.device, cfg.batch_size, cfg.window)
    per_task = {t.name: score_task(scorer, t) for t in tasks}
    result = {
        "tasks": per_task,
        "aggregate": aggregate(per_task),
        "bpb": reference_bpb(scorer) if cfg.reference_bpb else {},
        "model": {"dir": str(model_dir), "params": sum(p.numel() for p in scorer.model.parameters()),
                  "vocab_size": scorer.model.config.vocab_size},
        "seconds": round(time.time() - t0, 2),
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    write_report(result, out_dir)
    return {
        **{k: round(v, 4) for k, v in result["aggregate"].items()},
        **{f"bpb_{k}": round(v, 4) for k, v in result["bpb"].items()},
        "tasks": len(per_task),
        "items": sum(t["items"] for t in per_task.values()),
        "malformed": sum(t["malformed"] for t in per_task.values()),
        "unencodable": sum(t["unencodable"] for t in per_task.values()),
        "seconds": result["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.harness", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="model directory (pretrain or sft output)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--max-items", type=int)
    p.add_argument("--tasks", help="comma-separated shipped task names (default: all)")
    p.add_argument("--extra", action="append", default=[], help="extra task [NAME=]PATH (repeatable)")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    over: dict[str, Any] = {"max_items": a.max_items, "extra_tasks": a.extra, "device": a.device}
    if a.tasks:
        over["tasks"] = a.tasks.split(",")
    try:
        stats = run_eval(a.model, a.out, EvalConfig(**over))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print((a.out / "eval.md").read_text(encoding="utf-8"))
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
