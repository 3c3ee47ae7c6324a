"""The corpus report: Markdown + PNG plots that show the mixed corpus before anyone spends GPU hours on it.

What it is for: `flows.dag` calls `write_report` right after the `mix` stage, so the report lives inside the
mix artifact (`<mix artifact>/report/report.md` and `report/*.png`, listed in its manifest) and the Prefect
flow attaches it to the run (`flows.prefect_flows`). Sections:

* Stages: documents in/out and drop reasons of every curation stage (from the upstream manifests' stats,
  passed in by the caller: this module does not know the artifact store);
* Mix: documents, bytes, repeats and estimated tokens per language and per source, before and after;
* plots: document length (characters, log scale) per language, quality_score per language with the
  thresholds, language shares before/after, drop reasons per stage, dedup cluster sizes;
* samples: two documents per quality_score decile and language (truncated to `SAMPLE_CHARS`), to read what a
  score means.

Memory is bounded by a batch of `BATCH_ROWS` rows, never by the corpus: the input is streamed (lengths,
quality_score and cluster sizes become histograms and counts as they pass), the decile edges come from a
seeded reservoir of `RESERVOIR` scores per language (exact for smaller languages; the lowest and highest
edges are always the exact minimum and maximum), and only the ~20 sampled texts per language are kept.

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
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from curation.mix import Lengths, stream_batches  # noqa: E402

REPORT_DIR = "report"
REPORT_NAME = "report.md"
SAMPLE_CHARS = 300  # per sampled document: enough to judge it, short enough to keep the report readable
PLOTS = ("lengths.png", "quality.png", "languages.png", "drops.png", "clusters.png")
_DPI = 80  # ~20-40 KB per PNG: small enough to inline in a Prefect artifact

BATCH_ROWS = 1000  # rows per streamed batch: the text column is never read whole
RESERVOIR = 10_000  # quality scores kept per language for the decile edges (exact below this many documents)
_LENGTH_EDGES = 10 ** (np.arange(0, 8 * 20 + 1) / 20)  # 1 .. 1e8 characters, 20 bins a decade
_SCORE_BINS = 40
_PICK = 20  # candidates kept per end of a decile: >= the 18 documents earlier deciles can have taken


@dataclass
class _Summary:
    """What the plots and samples need of a set of Parquet files, gathered batch by batch."""

    rows: int = 0
    lengths: dict[str, np.ndarray] = field(default_factory=dict)     # language -> counts per _LENGTH_EDGES bin
    scores: dict[str, np.ndarray] = field(default_factory=dict)      # language -> counts per score bin
    score_sum: dict[str, float] = field(default_factory=dict)
    score_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    reservoir: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # language -> (keys, scores)
    clusters: Counter[int] = field(default_factory=Counter)
    has_scores: bool = False
    has_clusters: bool = False


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 of row numbers: the reservoir keeps the rows with the smallest keys, so the sample depends
    on the rows alone, not on batch sizes or arrival order."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _stream(files: Sequence[Path], wanted: Sequence[str], batch_rows: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(first row number, rows, {column: values}) per batch of every file; columns a file lacks are None."""
    offset = 0
    for path in files:
        present = set(pq.read_schema(path).names)
        for batch in stream_batches(path, wanted, batch_rows):
            yield offset, batch.num_rows, {c: batch.column(c) if c in present else None for c in wanted}
            offset += batch.num_rows


def _langs_of(column: Any, k: int) -> np.ndarray:
    return np.array([x or "(none)" for x in column.to_pylist()] if column is not None else ["(none)"] * k, dtype=object)


def _add_lengths(out: _Summary, langs: np.ndarray, chars: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Add documents (each counted `weights` times, default once) to the per-language length histograms."""
    for lang in np.unique(langs):
        rows = langs == lang
        counts = np.histogram(np.clip(chars[rows], 1, _LENGTH_EDGES[-1]), bins=_LENGTH_EDGES,
                              weights=None if weights is None else weights[rows])[0].astype(np.int64)
        out.lengths[lang] = out.lengths.get(lang, 0) + counts


def _summary_of_lengths(lengths: Lengths, mixed: bool) -> _Summary:
    """The length histograms from the mix's own per-row lengths: of its input, or (`mixed`) of the rows it wrote."""
    out = _Summary()
    names = np.array([name or "(none)" for name in lengths.langs] or ["(none)"], dtype=object)
    langs = names[lengths.lang]
    weights = lengths.copies if mixed else None
    out.rows = int(lengths.copies.sum()) if mixed else len(lengths.chars)
    if mixed:  # languages with no row written stay out of the plot's legend, as when the shards were read
        langs, chars, weights = langs[weights > 0], lengths.chars[weights > 0], weights[weights > 0]
    else:
        chars = lengths.chars
    _add_lengths(out, langs, chars, weights)
    return out


def _summarise(files: Sequence[Path], batch_rows: int, scores: bool, with_text: bool = True) -> _Summary:
    """Length histograms per language (unless not `with_text`); with `scores`, also quality histograms,
    reservoirs and cluster sizes."""
    wanted = ["lang", *(["text"] if with_text else []), *(["quality_score", "dup_cluster_size"] if scores else [])]
    out = _Summary()
    for offset, k, cols in _stream(files, wanted, batch_rows):
        out.rows += k
        langs = _langs_of(cols["lang"], k)
        if with_text:
            chars = (pc.utf8_length(cols["text"].fill_null("")).to_numpy(zero_copy_only=False)
                     if cols["text"] is not None else np.zeros(k))
            _add_lengths(out, langs, chars)
        if scores and cols["quality_score"] is not None:
            out.has_scores = True
            _add_scores(out, langs, cols["quality_score"].to_numpy(zero_copy_only=False).astype(float), offset)
        if scores and cols["dup_cluster_size"] is not None:
            out.has_clusters = True
            sizes = cols["dup_cluster_size"].drop_null().to_numpy(zero_copy_only=False).astype(int)
            out.clusters.update(dict(zip(*(v.tolist() for v in np.unique(sizes, return_counts=True)))))
    return out


def _add_scores(out: _Summary, langs: np.ndarray, values: np.ndarray, offset: int) -> None:
    known = ~np.isnan(values)
    row_keys = _mix64(np.arange(offset, offset + len(values)))
    for lang in np.unique(langs[known]):
        rows = known & (langs == lang)
        v = values[rows]
        counts = np.histogram(np.clip(v, 0, 1), bins=_SCORE_BINS, range=(0, 1))[0]
        out.scores[lang] = out.scores.get(lang, 0) + counts
        out.score_sum[lang] = out.score_sum.get(lang, 0.0) + float(v.sum())
        lo, hi = out.score_range.get(lang, (math.inf, -math.inf))
        out.score_range[lang] = (min(lo, float(v.min())), max(hi, float(v.max())))
        keys, kept = out.reservoir.get(lang, (np.zeros(0, np.uint64), np.zeros(0)))
        keys, kept = np.concatenate([keys, row_keys[rows]]), np.concatenate([kept, v])
        if len(keys) > RESERVOIR:
            best = np.argpartition(keys, RESERVOIR)[:RESERVOIR]
            keys, kept = keys[best], kept[best]
        out.reservoir[lang] = (keys, kept)


def write_report(
    mix_dir: Path,
    mix_inputs: Sequence[str | Path],
    mix_stats: dict[str, Any],
    upstream: Sequence[tuple[str, str, dict[str, Any]]],
    thresholds: dict[str, float] | None = None,
    settings: dict[str, Any] | None = None,
    batch_rows: int = BATCH_ROWS,
    lengths: Lengths | None = None,
) -> dict[str, Any]:
    """Write `mix_dir/report/report.md` and its PNGs; return {"report": path, "plots": [...], "sections": [...]}.

    `mix_inputs`: the mix stage's input Parquet files (the scored documents, before sampling);
    `mix_stats`: what `curation.mix.mix` returned; `upstream`: (kind, artifact id, stats) of every stage
    before mix, in pipeline order; `thresholds`: language -> quality threshold, drawn on the quality plot;
    `settings`: the mix config, printed at the top; `batch_rows`: rows read at a time; `lengths`: what
    `curation.mix.mix_with_lengths` returned for this mix (the text columns are then not read for the length
    plot; the plot is the same).
    """
    mix_dir = Path(mix_dir)
    out = mix_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    inputs = [Path(p) for p in mix_inputs]
    if lengths is None:
        before = _summarise(inputs, batch_rows, scores=True)
        mixed_files = sorted(mix_dir.glob("train-*.parquet")) + sorted(mix_dir.glob("val-*.parquet"))
        after = _summarise(mixed_files, batch_rows, scores=False)
    else:
        before = _summarise(inputs, batch_rows, scores=True, with_text=False)
        before.lengths = _summary_of_lengths(lengths, mixed=False).lengths
        after = _summary_of_lengths(lengths, mixed=True)

    _plot_lengths(before, after, out / "lengths.png")
    _plot_quality(before, thresholds or {}, out / "quality.png")
    _plot_languages(mix_stats, out / "languages.png")
    _plot_drops(upstream, mix_stats, out / "drops.png")
    _plot_clusters(before, out / "clusters.png")
    samples = _samples(inputs, before, batch_rows)

    md = render_markdown(mix_stats, upstream, samples, settings)
    (out / REPORT_NAME).write_text(md, encoding="utf-8")
    sections = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    return {"report": f"{REPORT_DIR}/{REPORT_NAME}", "plots": [f"{REPORT_DIR}/{p}" for p in PLOTS],
            "sections": sections}


# ------------------------------------------------------------------------------------------------ plots


def _save(fig: plt.Figure, path: Path, left: float = 0.08) -> None:
    # Fixed margins: tight_layout draws every figure twice, which was 3 of the report's 6 seconds.
    fig.subplots_adjust(left=left, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)

def _plot_lengths(before: _Summary, after: _Summary, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
    for ax, data, title in ((axes[0], before, "mix input (scored documents)"), (axes[1], after, "mixed corpus (rows)")):
        groups = {lang: counts for lang, counts in sorted(data.lengths.items()) if counts.sum()}
        if not groups:
            _empty(ax, "documents")
            continue
        used = np.flatnonzero(sum(groups.values()))
        edges = _LENGTH_EDGES[used[0]: used[-1] + 2]  # the bins that hold documents
        for lang, counts in groups.items():
            ax.hist(edges[:-1], bins=edges, weights=counts[used[0]: used[-1] + 1], alpha=0.6,
                    label=f"{lang} ({int(counts.sum())})")
        ax.set_xscale("log")
        ax.set_xlabel("characters per document")
        ax.set_ylabel("documents")
        ax.set_title(title)
        ax.legend()
    _save(fig, path)


def _plot_quality(before: _Summary, thresholds: dict[str, float], path: Path) -> None:
    groups = dict(sorted(before.scores.items()))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.5 * max(1, len(groups)), 3.5), squeeze=False)
    if not groups:
        _empty(axes[0][0], "quality_score column")
    edges = np.linspace(0, 1, _SCORE_BINS + 1)  # scores outside [0, 1] are counted in the end bins
    for ax, (lang, counts) in zip(axes[0], groups.items()):
        ax.hist(edges[:-1], bins=edges, weights=counts, color="tab:blue")
        if thresholds.get(lang, 0) > 0:
            ax.axvline(thresholds[lang], color="tab:red", linestyle="--", label=f"threshold {thresholds[lang]}")
            ax.legend()
        n = int(counts.sum())
        ax.set_title(f"quality_score, {lang} ({n} docs, mean {before.score_sum[lang] / n:.3f})")
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


def _drop_rows(
    upstream: Sequence[tuple[str, str, dict[str, Any]]], mix_stats: dict[str, Any]
) -> list[tuple[str, str, int]]:
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

def _plot_clusters(before: _Summary, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if not before.clusters:
        _empty(ax, "dup_cluster_size column")
    else:
        values = sorted(before.clusters)
        total = sum(before.clusters.values())
        duplicated = sum(c for v, c in before.clusters.items() if v > 1)
        ax.bar([str(v) for v in values[:30]], [before.clusters[v] for v in values[:30]], color="tab:green")
        ax.set_yscale("log")
        ax.set_xlabel("dedup cluster size (documents the kept one stands for)")
        ax.set_ylabel("kept documents")
        ax.set_title(f"dedup cluster sizes ({duplicated} of {total} had duplicates)")
    _save(fig, path, left=0.14)


# ---------------------------------------------------------------------------------------------- samples


def _decile_edges(before: _Summary) -> dict[str, np.ndarray]:
    """Per language, the 11 quality_score decile edges of its reservoir, the ends set to the exact min and max."""
    edges = {}
    for lang, (_, kept) in before.reservoir.items():
        e = np.quantile(kept, np.linspace(0, 1, 11))
        e[0], e[-1] = before.score_range[lang]
        edges[lang] = e
    return edges


def _samples(files: Sequence[Path], before: _Summary, batch_rows: int) -> list[tuple[int, float, str, str]]:
    """(decile, score, lang, truncated text): per language, the lowest and highest scoring document of each
    quality_score decile. Deciles are per language because scorers are not calibrated across languages
    (the learned scorer gives Wikipedia zh a lower mean than C4 en on the demo). Two streamed passes: the
    scores (the `_PICK` lowest and highest candidates of each decile), then the texts of the picked rows."""
    edges = _decile_edges(before)
    if not edges:
        return []
    low: dict[tuple[str, int], list[tuple[float, int]]] = {}
    high: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for offset, _, cols in _stream(files, ["lang", "quality_score"], batch_rows):
        if cols["quality_score"] is None:
            continue
        scores = cols["quality_score"].to_numpy(zero_copy_only=False).astype(float)
        langs = _langs_of(cols["lang"], len(scores))
        for lang in np.unique(langs[~np.isnan(scores)]):
            e = edges[lang]
            for decile in range(10):
                rows = np.flatnonzero((langs == lang) & (scores >= e[decile]) & (scores <= e[decile + 1]))
                found = sorted(zip(scores[rows].tolist(), (rows + offset).tolist()))
                key = (lang, decile)
                low[key] = sorted(low.get(key, []) + found[:_PICK])[:_PICK]
                high[key] = sorted(high.get(key, []) + found[-_PICK:])[-_PICK:]
    picked: dict[int, tuple[int, float, str]] = {}
    for lang in sorted(edges):
        for decile in range(10):
            members = sorted({m for m in low.get((lang, decile), []) + high.get((lang, decile), [])
                              if m[1] not in picked})
            for s, i in {members[0], members[-1]} if members else set():
                picked[i] = (decile + 1, s, "" if lang == "(none)" else lang)
    texts: dict[int, str] = {}
    for offset, _, cols in _stream(files, ["text"], batch_rows):
        if cols["text"] is None:
            continue
        for i in [i for i in picked if offset <= i < offset + len(cols["text"])]:
            texts[i] = cols["text"][i - offset].as_py() or ""
    out = []
    for i, (decile, score, lang) in sorted(picked.items(), key=lambda kv: (kv[1][2], kv[1][0], kv[1][1])):
        text = " ".join(texts.get(i, "").split())
        text = text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else "")
        out.append((decile, score, lang, text))
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
        f"{_fmt(mix_stats.get('repeats', 0))} repeats; "
        f"token-budget factor {mix_stats.get('budget', {}).get('factor', 1.0)}.",
        "",
        *([f"Mix settings: `{json.dumps(settings, ensure_ascii=False, sort_keys=True)}`", ""] if settings else []),
        "## Stages",
        "",
        "| stage | artifact | docs in | docs out | drops |",
        "|---|---|---:|---:|---|",
    ]
    for kind, aid, stats in upstream:
        drops = ", ".join(f"{r} {c}" for r, c in sorted((stats.get("dropped") or {}).items(), key=lambda kv: -kv[1]))
        lines.append(f"| {kind} | `{aid}` | {stats.get('docs_in', '')} | {stats.get('docs_out', '')} "
                     f"| {drops or '-'} |")
    mix_drops = ", ".join(f"{r} {c}" for r, c in (mix_stats.get("dropped") or {}).items())
    lines.append(f"| mix | (this artifact) | {mix_stats.get('docs_in', '')} | {mix_stats.get('docs_out', '')} | "
                 f"{mix_drops or '-'} |")
    lines += ["", _img("drops.png", "drop reasons per stage"), ""]

    for title, key in (("Mix by language", "by_lang"), ("Mix by source", "by_source")):
        table = mix_stats.get(key, {})
        lines += [f"## {title}", "",
                  "| key | docs before | bytes before | docs after | rows after | bytes after | repeats |",
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
