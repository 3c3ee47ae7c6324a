"""The corpus report: Markdown + PNG plots that show the mixed corpus before anyone spends GPU hours on it.

What it is for: `flows.dag` calls `write_report` right after the `mix` stage, so the report lives inside the
mix artifact (`<mix artifact>/report/report.md` and `report/*.png`, listed in its manifest) and the Prefect
flow attaches it to the run (`flows.prefect_flows`). Sections:

* Stages: documents in/out and drop reasons of every curation stage (from the upstream manifests' stats,
  passed in by the caller: this module does not know the artifact store);
* Mix: documents, bytes, repeats and estimated tokens per language and per source, before and after;
* plots: document length (characters, log scale) per language, quality_score per language with the
  thresholds, language shares before/after, drop reasons per stage, dedup cluster sizes;
* samples: two documents per quality_score decile and language (truncated to `SAMPLE_CHARS`), to read what a score means.

Plots use matplotlib's Agg backend (no display). `embedded(report_dir)` inlines the PNGs as
base64 data URIs: the Prefect UI renders markdown images with a plain `<img src>`, which shows data URIs, while
a local file path would not load in the browser (Prefect's image artifact also wants a URL the browser can
reach).

Run by the pipeline (`lmpipe run corpus`); by hand: `write_report(mix_dir, quality_parquet_files, mix_stats, [])`.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

REPORT_DIR = "report"
REPORT_NAME = "report.md"
SAMPLE_CHARS = 300  # per sampled document: enough to judge it, short enough to keep the report readable
PLOTS = ("lengths.png", "quality.png", "languages.png", "drops.png", "clusters.png")
_DPI = 80  # ~20-40 KB per PNG: small enough to inline in a Prefect artifact


def _columns(files: Sequence[Path], wanted: Sequence[str]) -> dict[str, list[Any]]:
    """The wanted columns of every file (None where a file lacks one)."""
    out: dict[str, list[Any]] = {c: [] for c in wanted}
    for path in files:
        names = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in wanted if c in names])
        for c in wanted:
            out[c].extend(table.column(c).to_pylist() if c in names else [None] * table.num_rows)
    return out


def _text_lengths(files: Sequence[Path]) -> list[int]:
    lengths: list[int] = []
    for path in files:
        col = pq.read_table(path, columns=["text"]).column("text")
        lengths.extend(pc.utf8_length(col.fill_null("")).to_pylist())
    return lengths


def write_report(
    mix_dir: Path,
    mix_inputs: Sequence[str | Path],
    mix_stats: dict[str, Any],
    upstream: Sequence[tuple[str, str, dict[str, Any]]],
    thresholds: dict[str, float] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `mix_dir/report/report.md` and its PNGs; return {"report": path, "plots": [...], "sections": [...]}.

    `mix_inputs`: the mix stage's input Parquet files (the scored documents, before sampling);
    `mix_stats`: what `curation.mix.mix` returned; `upstream`: (kind, artifact id, stats) of every stage
    before mix, in pipeline order; `thresholds`: language -> quality threshold, drawn on the quality plot;
    `settings`: the mix config, printed at the top.
    """
    mix_dir = Path(mix_dir)
    out = mix_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    inputs = [Path(p) for p in mix_inputs]
    before = _columns(inputs, ["id", "lang", "quality_score", "dup_cluster_size", "source"])
    before["chars"] = _text_lengths(inputs)
    mixed_files = sorted(mix_dir.glob("train-*.parquet")) + sorted(mix_dir.glob("val-*.parquet"))
    after = _columns(mixed_files, ["id", "lang"])
    after["chars"] = _text_lengths(mixed_files)

    _plot_lengths(before, after, out / "lengths.png")
    _plot_quality(before, thresholds or {}, out / "quality.png")
    _plot_languages(mix_stats, out / "languages.png")
    _plot_drops(upstream, mix_stats, out / "drops.png")
    _plot_clusters(before, out / "clusters.png")
    samples = _samples(inputs, before)

    md = render_markdown(mix_stats, upstream, samples, settings)
    (out / REPORT_NAME).write_text(md, encoding="utf-8")
    sections = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    return {"report": f"{REPORT_DIR}/{REPORT_NAME}", "plots": [f"{REPORT_DIR}/{p}" for p in PLOTS],
            "sections": sections}


# ------------------------------------------------------------------------------------------------ plots


def _by_lang(values: list[Any], langs: list[Any]) -> dict[str, np.ndarray]:
    groups: dict[str, list[float]] = {}
    for v, lang in zip(values, langs):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            groups.setdefault(lang or "(none)", []).append(float(v))
    return {k: np.array(v) for k, v in sorted(groups.items())}


def _save(fig: plt.Figure, path: Path, left: float = 0.08) -> None:
    # Fixed margins: tight_layout draws every figure twice, which was 3 of the report's 6 seconds.
    fig.subplots_adjust(left=left, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


def _plot_lengths(before: dict[str, list[Any]], after: dict[str, list[Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
    for ax, data, title in ((axes[0], before, "mix input (scored documents)"), (axes[1], after, "mixed corpus (rows)")):
        groups = _by_lang(data["chars"], data["lang"])
        values = [v for v in groups.values() if len(v)]
        if not values:
            _empty(ax, "documents")
            continue
        top = max(float(v.max()) for v in values)
        bins = np.logspace(0, math.log10(max(top, 10)) + 0.05, 40)
        for lang, v in groups.items():
            ax.hist(np.maximum(v, 1), bins=bins, alpha=0.6, label=f"{lang} ({len(v)})")
        ax.set_xscale("log")
        ax.set_xlabel("characters per document")
        ax.set_ylabel("documents")
        ax.set_title(title)
        ax.legend()
    _save(fig, path)


def _plot_quality(before: dict[str, list[Any]], thresholds: dict[str, float], path: Path) -> None:
    groups = _by_lang(before["quality_score"], before["lang"])
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.5 * max(1, len(groups)), 3.5), squeeze=False)
    if not groups:
        _empty(axes[0][0], "quality_score column")
    for ax, (lang, v) in zip(axes[0], groups.items()):
        ax.hist(v, bins=np.linspace(min(0.0, float(v.min())), max(1.0, float(v.max())), 41), color="tab:blue")
        if thresholds.get(lang, 0) > 0:
            ax.axvline(thresholds[lang], color="tab:red", linestyle="--", label=f"threshold {thresholds[lang]}")
            ax.legend()
        ax.set_title(f"quality_score, {lang} ({len(v)} docs, mean {v.mean():.3f})")
        ax.set_xlabel("quality_score")
        ax.set_ylabel("documents")
    _save(fig, path)


def _plot_languages(mix_stats: dict[str, Any], path: Path) -> None:
    by_lang = mix_stats.get("by_lang", {})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    langs = list(by_lang)
    for ax, (unit_before, unit_after, title) in zip(
        axes, (("docs_before", "rows_after", "documents"), ("bytes_before", "bytes_after", "UTF-8 bytes"))
    ):
        if not langs:
            _empty(ax, "languages")
            continue
        b = np.array([by_lang[lang][unit_before] for lang in langs], dtype=float)
        a = np.array([by_lang[lang][unit_after] for lang in langs], dtype=float)
        x = np.arange(len(langs))
        ax.bar(x - 0.2, b / max(b.sum(), 1), 0.4, label="before mix")
        ax.bar(x + 0.2, a / max(a.sum(), 1), 0.4, label="after mix (with repeats)")
        ax.set_xticks(x, langs)
        ax.set_ylabel("share")
        ax.set_title(f"language shares, {title}")
        ax.legend(fontsize="small")
    _save(fig, path)


def _drop_rows(upstream: Sequence[tuple[str, str, dict[str, Any]]], mix_stats: dict[str, Any]) -> list[tuple[str, str, int]]:
    rows = []
    for kind, _, stats in [*upstream, ("mix", "", mix_stats)]:
        for reason, count in sorted((stats.get("dropped") or {}).items(), key=lambda kv: -kv[1]):
            rows.append((kind, reason, int(count)))
    return rows


def _plot_drops(upstream: Sequence[tuple[str, str, dict[str, Any]]], mix_stats: dict[str, Any], path: Path) -> None:
    rows = _drop_rows(upstream, mix_stats)
    # lang:<code> reasons are many and small: the 25 largest rows keep the plot readable (all are in the table).
    shown = sorted(rows, key=lambda r: -r[2])[:25]
    fig, ax = plt.subplots(figsize=(8, 0.3 * max(len(shown), 4) + 1))
    if not shown:
        _empty(ax, "drops")
    else:
        labels = [f"{kind}: {reason}" for kind, reason, _ in shown][::-1]
        ax.barh(labels, [c for _, _, c in shown][::-1], color="tab:orange")
        ax.set_xscale("log")
        ax.set_xlabel("documents dropped")
        ax.set_title("drop reasons per stage (largest 25)")
    _save(fig, path, left=0.4)


def _plot_clusters(before: dict[str, list[Any]], path: Path) -> None:
    sizes = np.array([s for s in before["dup_cluster_size"] if s is not None], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if not len(sizes):
        _empty(ax, "dup_cluster_size column")
    else:
        values, counts = np.unique(sizes.astype(int), return_counts=True)
        ax.bar([str(v) for v in values[:30]], counts[:30], color="tab:green")
        ax.set_yscale("log")
        ax.set_xlabel("dedup cluster size (documents the kept one stands for)")
        ax.set_ylabel("kept documents")
        ax.set_title(f"dedup cluster sizes ({int((sizes > 1).sum())} of {len(sizes)} had duplicates)")
    _save(fig, path, left=0.14)


# ---------------------------------------------------------------------------------------------- samples


def _samples(files: Sequence[Path], before: dict[str, list[Any]]) -> list[tuple[int, float, str, str]]:
    """(decile, score, lang, truncated text): per language, the lowest and highest scoring document of each
    quality_score decile. Deciles are per language because scorers are not calibrated across languages
    (the learned scorer gives Wikipedia zh a lower mean than C4 en on the demo)."""
    picked: dict[int, tuple[int, float]] = {}
    for lang in sorted({x or "" for x in before["lang"]}):
        scored = [(s, i) for i, s in enumerate(before["quality_score"])
                  if s is not None and not math.isnan(s) and (before["lang"][i] or "") == lang]
        if not scored:
            continue
        edges = np.quantile(np.array([s for s, _ in scored]), np.linspace(0, 1, 11))
        for decile in range(10):
            members = sorted((s, i) for s, i in scored if edges[decile] <= s <= edges[decile + 1] and i not in picked)
            for s, i in {members[0], members[-1]} if members else set():
                picked[i] = (decile + 1, s)
    wanted = set(picked)
    texts: dict[int, str] = {}
    offset = 0
    for path in files:
        col = pq.read_table(path, columns=["text"]).column("text")
        for j in [i - offset for i in wanted if offset <= i < offset + len(col)]:
            texts[j + offset] = col[j].as_py() or ""
        offset += len(col)
    out = []
    for i, (decile, score) in sorted(picked.items(), key=lambda kv: (before["lang"][kv[0]] or "", kv[1])):
        text = " ".join(texts.get(i, "").split())
        text = text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else "")
        out.append((decile, score, before["lang"][i] or "", text))
    return out


# --------------------------------------------------------------------------------------------- markdown


def _img(name: str, alt: str) -> str:
    return f"![{alt}]({name})"


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def render_markdown(
    mix_stats: dict[str, Any],
    upstream: Sequence[tuple[str, str, dict[str, Any]]],
    samples: Sequence[tuple[int, float, str, str]],
    settings: dict[str, Any] | None = None,
) -> str:
    """The report text; the PNGs beside it are linked by file name (`embedded` inlines them)."""
    lines = ["# Corpus report", ""]
    train, val = mix_stats.get("train", {}), mix_stats.get("val", {})
    lines += [
        f"Mixed corpus: **{_fmt(train.get('rows', 0))} train rows** ({_fmt(train.get('docs', 0))} distinct documents, "
        f"~{_fmt(train.get('tokens_est', 0))} tokens estimated), **{_fmt(val.get('rows', 0))} val rows**; "
        f"{_fmt(mix_stats.get('repeats', 0))} repeats; token-budget factor {mix_stats.get('budget', {}).get('factor', 1.0)}.",
        "",
        *([f"Mix settings: `{json.dumps(settings, ensure_ascii=False, sort_keys=True)}`", ""] if settings else []),
        "## Stages",
        "",
        "| stage | artifact | docs in | docs out | drops |",
        "|---|---|---:|---:|---|",
    ]
    for kind, aid, stats in upstream:
        drops = ", ".join(f"{r} {c}" for r, c in sorted((stats.get("dropped") or {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"| {kind} | `{aid}` | {stats.get('docs_in', '')} | {stats.get('docs_out', '')} | {drops or '-'} |")
    mix_drops = ", ".join(f"{r} {c}" for r, c in (mix_stats.get("dropped") or {}).items())
    lines.append(f"| mix | (this artifact) | {mix_stats.get('docs_in', '')} | {mix_stats.get('docs_out', '')} | "
                 f"{mix_drops or '-'} |")
    lines += ["", _img("drops.png", "drop reasons per stage"), ""]

    for title, key in (("Mix by language", "by_lang"), ("Mix by source", "by_source")):
        table = mix_stats.get(key, {})
        lines += [f"## {title}", "", "| key | docs before | bytes before | docs after | rows after | bytes after | repeats |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, e in table.items():
            lines.append(f"| {name} | {_fmt(e['docs_before'])} | {_fmt(e['bytes_before'])} | {_fmt(e['docs_after'])} | "
                         f"{_fmt(e['rows_after'])} | {_fmt(e['bytes_after'])} | {_fmt(e['repeats'])} |")
        lines.append("")
    lines += [_img("languages.png", "language shares"), "",
              "## Document lengths", "", _img("lengths.png", "document length histogram"), "",
              "## Quality scores", "", _img("quality.png", "quality_score histogram per language"), "",
              "## Dedup cluster sizes", "", _img("clusters.png", "dedup cluster sizes"), "",
              "## Samples per quality decile", "",
              f"Per language, the lowest and highest scoring document of each quality_score decile of the mix "
              f"input, first {SAMPLE_CHARS} characters.", "",
              "| decile | score | lang | text |", "|---:|---:|---|---|"]
    for decile, score, lang, text in samples:
        lines.append(f"| {decile} | {score:.3f} | {lang} | {text.replace('|', '¦')} |")
    if not samples:
        lines.append("| - | - | - | (no quality_score column) |")
    return "\n".join(lines) + "\n"


def embedded(report_dir: Path) -> str:
    """`report.md` with every `![alt](x.png)` replaced by a base64 data URI (for the Prefect UI)."""
    report_dir = Path(report_dir)
    md = (report_dir / REPORT_NAME).read_text(encoding="utf-8")
    for name in PLOTS:
        if (report_dir / name).exists():
            data = base64.b64encode((report_dir / name).read_bytes()).decode("ascii")
            md = md.replace(f"]({name})", f"](data:image/png;base64,{data})")
    return md
