"""Data ablations inside the DAG: did this curation choice make a better model?

``lmpipe ablate --variant NAME=KEY=VALUE[,KEY=VALUE…] … [--seeds K]`` trains one proxy model per variant and
seed and compares their evals (``evals.harness``):

* Every variant is the preset plus the common ``--set`` values plus its own keys; the first variant is the
  baseline. Each runs the ordinary DAG stages (``flows.dag``), so what variants share (a change of ``mix.*``
  shares ingest … quality) is one artifact, and a second call with one more variant trains only that one.
* One tokenizer for all: it is trained on the baseline's mix, and every other variant's ``tokens`` stage takes
  that artifact as its tokenizer parent (the DAG's ``known`` ids, the mechanism of ``--from``). Variants may
  not set ``tokenizer.*``.
* One token budget: ``pretrain.steps × batch_size × seq_len × grad_accum`` is the same for every variant
  (variants may not set those keys). A smaller corpus is read for more epochs (the loader starts a new seeded
  permutation of its windows when one ends); the corpus table shows each variant's epochs.
* Seeds: ``pretrain.seed`` = base seed + 0 … K-1 (base: the preset's or ``--set pretrain.seed``).
* The comparison: mean ± sample standard deviation over seeds of every eval metric (reference bits per byte
  per language, each task's accuracy, the centred aggregates); for bits per byte, whether a variant differs
  from the baseline by more than the seed spread: |mean_v − mean_base| > 2 × pooled std, pooled std =
  sqrt((s_v² + s_base²) / 2) (equal seed counts). It is an ``ablation`` artifact (``ablation.json``,
  ``ablation.md``, ``ablation.png``) whose parents are the eval artifacts.

The Prefect flow is ``flows.prefect_flows.ablate_flow``; ``--no-prefect`` runs the same steps as plain calls
(``PlainStages``). Run: ``lmpipe ablate`` (the two default variants on the ``ablate`` preset).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flows.config import PipelineConfig, UserError, apply_override, resolve_config
from storage.store import ArtifactStore, Manifest

ABLATION_VERSION = "1"
# Used when no --variant is given: all documents vs the better-scored half of each language.
DEFAULT_VARIANTS = ["all=mix.top_fraction=1", "top50=mix.top_fraction=0.5"]
# Keys a variant may not set: they would change the tokenizer, the token budget, the seeds or the yardstick,
# or they do not touch the models compared (no SFT is trained; execution never changes an artifact).
FIXED_KEYS = ("tokenizer", "eval", "sft", "sft_data", "execution", "pretrain.steps", "pretrain.batch_size",
              "pretrain.seq_len", "pretrain.grad_accum", "pretrain.seed", "pretrain.nproc", "pretrain.nnodes")
SPREAD_FACTOR = 2.0  # a difference counts when it exceeds this many pooled standard deviations
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A variant's keys are comma-separated; a comma inside a JSON value ({"zh": 1, "en": 0.5}) is not followed by
# KEY= and so does not split.
KEY_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w.]*=)")


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, str]


@dataclass(frozen=True)
class AblationSpec:
    """What to compare: the config source shared by all variants, the variants and the seeds."""

    preset: str
    variants: list[Variant]
    seeds: list[int]
    common: dict[str, Any] = field(default_factory=dict)  # --set values (and execution flags) for every variant
    inputs: list[str] | None = None

    def overrides(self, variant: Variant, seed: int | None = None) -> dict[str, Any]:
        out = {**self.common, **variant.overrides}
        if seed is not None:
            out["pretrain.seed"] = str(seed)
        return out

    def config(self, variant: Variant, seed: int | None = None) -> PipelineConfig:
        return resolve_config(self.preset, self.overrides(variant, seed), self.inputs)


def parse_variant(text: str) -> Variant:
    """``NAME=KEY=VALUE[,KEY=VALUE…]`` → Variant; a one-line UserError for anything else."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UserError(f"--variant expects NAME=KEY=VALUE[,KEY=VALUE...], got '{text}'; "
                        "e.g. --variant top50=mix.top_fraction=0.5")
    if not NAME_RE.match(name):
        raise UserError(f"variant name '{name}' may hold only letters, digits, '_', '.' and '-'")
    if not rest.strip():
        raise UserError(f"variant '{name}' sets no config key; e.g. --variant {name}=mix.top_fraction=0.5")
    overrides: dict[str, str] = {}
    for item in KEY_SPLIT.split(rest):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UserError(f"variant '{name}': '{item}' is not KEY=VALUE; e.g. mix.top_fraction=0.5")
        if key in overrides:
            raise UserError(f"variant '{name}' sets '{key}' twice")
        fixed = next((f for f in FIXED_KEYS if key == f or key.startswith(f + ".")), None)
        if fixed:
            raise UserError(f"variant '{name}' sets '{key}', which every variant must share ({fixed}: same "
                            "tokenizer, token budget, seeds and eval); set it for all with --set")
        try:
            apply_override({}, key, value)  # the key must exist (the value is checked with the whole config)
        except UserError as e:
            raise UserError(f"variant '{name}': {e}") from None
        overrides[key] = value
    return Variant(name, overrides)


def make_spec(preset: str, variants: list[str], seeds: int, common: dict[str, Any],
              inputs: list[str] | None) -> AblationSpec:
    """Parse and check everything before any stage runs: names, keys, values, seeds, distinct configs."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    parsed = [parse_variant(v) for v in (variants or DEFAULT_VARIANTS)]
    seen: set[str] = set()
    for v in parsed:
        if v.name in seen:
            raise UserError(f"variant name '{v.name}' is given twice; give each variant its own name")
        seen.add(v.name)
    base = resolve_config(preset, common, inputs)  # common --set keys are checked once, without a variant
    spec = AblationSpec(preset, parsed, [base.pretrain.seed + i for i in range(seeds)], dict(common), inputs)
    configs: dict[str, str] = {}
    for v in parsed:
        try:
            dumped = json.dumps(spec.config(v).model_dump(mode="json"), sort_keys=True)
        except UserError as e:
            raise UserError(f"variant '{v.name}': {e}") from None
        if dumped in configs:
            raise UserError(f"variants '{configs[dumped]}' and '{v.name}' have the same config: they would train "
                            "the same models; change one of them")
        configs[dumped] = v.name
    return spec


class Stages(Protocol):
    """How the ablation's stages run: plain calls (``PlainStages``) or Prefect tasks (``flows.prefect_flows``).
    Each returns ``{"id", "built", "seconds"}`` per stage."""

    def corpus(self, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]: ...

    def stage(self, name: str, overrides: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]: ...

    def publish(self, manifest: Manifest, built: bool) -> None: ...


class PlainStages:
    """The ``--no-prefect`` path: ``flows.dag`` functions called directly."""

    def __init__(self, spec: AblationSpec, store: ArtifactStore) -> None:
        self.spec, self.store = spec, store

    def corpus(self, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
        from flows.dag import run_flow_plain

        cfg = resolve_config(self.spec.preset, overrides, self.spec.inputs)
        return run_flow_plain("corpus", cfg, self.store, None, None)

    def stage(self, name: str, overrides: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
        from flows.dag import run_stage

        cfg = resolve_config(self.spec.preset, overrides, self.spec.inputs)
        m, built = run_stage(name, cfg, self.store, ids, False)
        return {"id": m.id, "built": built, "seconds": m.seconds}

    def publish(self, manifest: Manifest, built: bool) -> None:
        return None


def precheck(spec: AblationSpec, store: ArtifactStore) -> None:
    """Each variant's mix settings against the inputs (and cached scores) before any stage runs."""
    from flows.dag import precheck as dag_precheck

    for v in spec.variants:
        try:
            dag_precheck("corpus", spec.config(v), store, {})
        except UserError as e:
            raise UserError(f"variant '{v.name}': {e}") from None


def run_ablation(spec: AblationSpec, stages: Stages, store: ArtifactStore) -> dict[str, Any]:
    """Run (or find) every variant's corpus, tokens, models and evals, then the comparison artifact.

    Returns ``{"runs": [{variant, seed, stage, id, built, seconds}], "ids": {variant: {stage: id}},
    "evals": {variant: [eval ids by seed]}, "ablation": id, "built": bool, "dir": Path}``."""
    runs: list[dict[str, Any]] = []
    ids_by_variant: dict[str, dict[str, str]] = {}
    evals: dict[str, list[str]] = {}
    tokenizer_id: str | None = None

    def note(variant: str, seed: int | None, name: str, r: dict[str, Any]) -> str:
        runs.append({"variant": variant, "seed": seed, "stage": name, **{k: r[k] for k in ("id", "built", "seconds")}})
        return r["id"]

    for v in spec.variants:
        over = spec.overrides(v)
        ids = {name: note(v.name, None, name, r) for name, r in stages.corpus(over).items()}
        if tokenizer_id is None:  # the baseline's mix trains the one tokenizer every variant uses
            tokenizer_id = note(v.name, None, "tokenizer", stages.stage("tokenizer", over, ids))
        ids["tokenizer"] = tokenizer_id
        ids["tokens"] = note(v.name, None, "tokens", stages.stage("tokens", over, ids))
        ids_by_variant[v.name] = dict(ids)
        evals[v.name] = []
        for seed in spec.seeds:
            over_s = spec.overrides(v, seed)
            pre = note(v.name, seed, "pretrain", stages.stage("pretrain", over_s, ids))
            ids_by_variant[v.name][f"pretrain@{seed}"] = pre
            evals[v.name].append(note(v.name, seed, "eval", stages.stage("eval", over_s, {**ids, "pretrain": pre})))
    m, built = build_record(spec, store, ids_by_variant, evals)
    stages.publish(m, built)
    return {"runs": runs, "ids": ids_by_variant, "evals": evals, "ablation": m.id, "built": built,
            "dir": store.local_dir(m.id)}


# ---- the comparison ---------------------------------------------------------------------------------------


def eval_metrics(result: dict[str, Any]) -> dict[str, float]:
    """An ``eval.json`` as flat metrics: ``bpb_<lang>``, the aggregates (``centred``…), ``<task>.acc``."""
    out = {f"bpb_{lang}": v for lang, v in sorted(result.get("bpb", {}).items())}
    out.update(result.get("aggregate", {}))
    out.update({f"{name}.acc": t["acc"] for name, t in result.get("tasks", {}).items()})
    return out


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1); no deviation from a single value."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def spread_verdict(base: list[float], other: list[float], factor: float = SPREAD_FACTOR) -> dict[str, Any]:
    """``other`` − ``base`` against the seed spread: exceeds when |Δmean| > factor × pooled std, with pooled
    std = sqrt((s_base² + s_other²) / 2) (the pooled estimate for equal seed counts). ``exceeds`` is None with one
    seed (no spread to compare with)."""
    (mb, sb), (mo, so) = mean_std(base), mean_std(other)
    diff = mo - mb
    if sb is None or so is None:
        return {"diff": diff, "pooled_std": None, "exceeds": None}
    pooled = math.sqrt((sb * sb + so * so) / 2)
    return {"diff": diff, "pooled_std": pooled, "exceeds": abs(diff) > factor * pooled}


def corpus_stats(store: ArtifactStore, ids: dict[str, str], budget_tokens: int) -> dict[str, Any]:
    """A variant's corpus side by side: documents and drops per curation stage, the mix, real train tokens."""
    out: dict[str, Any] = {}
    for name in ("ingest", "langid", "filter", "dedup"):
        s = store.get(ids[name]).stats
        out[f"{name}.docs_out"] = s.get("docs_out")
        out[f"{name}.dropped"] = sum((s.get("dropped") or {}).values())
    mix = store.get(ids["mix"]).stats
    out["mix.docs_out"] = mix.get("docs_out")
    out["mix.dropped"] = sum((mix.get("dropped") or {}).values())
    for reason, n in sorted((mix.get("dropped") or {}).items()):
        out[f"mix.dropped.{reason}"] = n
    out["mix.repeats"] = mix.get("repeats")
    for lang, s in sorted((mix.get("by_lang") or {}).items()):
        out[f"mix.docs.{lang}"] = s.get("docs_after")
    tokens = store.get(ids["tokens"]).stats.get("splits", {})
    out["train.docs"] = tokens.get("train", {}).get("docs")
    out["train.tokens"] = tokens.get("train", {}).get("tokens")
    out["val.tokens"] = tokens.get("val", {}).get("tokens")
    out["epochs"] = round(budget_tokens / out["train.tokens"], 3) if out["train.tokens"] else None
    return out


def compare(spec: AblationSpec, store: ArtifactStore, ids: dict[str, dict[str, str]],
            evals: dict[str, list[str]]) -> dict[str, Any]:
    """The comparison record (``ablation.json``) from the eval artifacts and the corpus manifests."""
    pre = spec.config(spec.variants[0]).pretrain
    budget = pre.steps * pre.batch_size * pre.seq_len * pre.grad_accum
    names = [v.name for v in spec.variants]
    values: dict[str, dict[str, list[float]]] = {}
    for name in names:
        per_seed = [eval_metrics(json.loads((store.local_dir(e) / "eval.json").read_text(encoding="utf-8")))
                    for e in evals[name]]
        values[name] = {k: [m[k] for m in per_seed if k in m] for k in per_seed[0]}
    metrics = list(values[names[0]])
    table = {name: {k: dict(zip(("mean", "std"), mean_std(vals)), values=vals) for k, vals in values[name].items()}
             for name in names}
    verdicts = [{"metric": k, "variant": name, **spread_verdict(values[names[0]][k], values[name][k])}
                for k in metrics if k.startswith("bpb_") for name in names[1:]]
    return {
        "baseline": names[0], "seeds": spec.seeds, "metrics": metrics, "table": table, "verdicts": verdicts,
        "rule": f"|mean_variant - mean_baseline| > {SPREAD_FACTOR:g} x pooled std, pooled std = "
                "sqrt((s_variant^2 + s_baseline^2) / 2), s = sample std over seeds",
        "budget": {"steps": pre.steps, "batch_size": pre.batch_size, "seq_len": pre.seq_len,
                   "grad_accum": pre.grad_accum, "tokens": budget},
        "tokenizer": ids[names[0]]["tokenizer"],
        "variants": {v.name: {"overrides": v.overrides, "evals": evals[v.name],
                              "artifacts": ids[v.name], "corpus": corpus_stats(store, ids[v.name], budget)}
                     for v in spec.variants},
    }


def record_identity(spec: AblationSpec, evals: dict[str, list[str]]) -> tuple[dict[str, Any], list[str]]:
    """(config, parents) of the ``ablation`` artifact: the variants (names, keys), the seeds, the rule's factor;
    its parents are the eval artifacts, variant by variant, seed by seed."""
    conf = {"variants": [{"name": v.name, "overrides": v.overrides} for v in spec.variants], "seeds": spec.seeds,
            "spread_factor": SPREAD_FACTOR}
    return conf, [e for v in spec.variants for e in evals[v.name]]


def planned_ids(spec: AblationSpec) -> list[str]:
    """Every artifact id the ablation will have, before anything runs (ids depend on config and parents only):
    when all exist, the CLI answers from the store without starting Prefect, as ``lmpipe run`` does."""
    from flows.dag import plan_ids, planned_id
    from storage.store import compute_id

    out: list[str] = []
    evals: dict[str, list[str]] = {}
    tokenizer_id: str | None = None
    for v in spec.variants:
        cfg = spec.config(v)
        ids = plan_ids("corpus", cfg, {})
        tokenizer_id = tokenizer_id or planned_id("tokenizer", cfg, ids)
        ids["tokenizer"] = tokenizer_id
        ids["tokens"] = planned_id("tokens", cfg, ids)
        out += ids.values()
        evals[v.name] = []
        for seed in spec.seeds:
            cfg_s = spec.config(v, seed)
            pre = planned_id("pretrain", cfg_s, ids)
            evals[v.name].append(planned_id("eval", cfg_s, {**ids, "pretrain": pre}))
            out += [pre, evals[v.name][-1]]
    conf, parents = record_identity(spec, evals)
    return [*dict.fromkeys(out), compute_id("ablation", ABLATION_VERSION, conf, parents)]


def build_record(spec: AblationSpec, store: ArtifactStore, ids: dict[str, dict[str, str]],
                 evals: dict[str, list[str]]) -> tuple[Manifest, bool]:
    """The ``ablation`` artifact: content-addressed by the variants (names, keys) and their eval artifacts."""
    from flows.provenance import stage_code

    conf, parents = record_identity(spec, evals)

    def write(out: Path) -> dict[str, Any]:
        record = compare(spec, store, ids, evals)
        (out / "ablation.json").write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        (out / "ablation.md").write_text(markdown(record), encoding="utf-8")
        plot(record, out / "ablation.png")
        return {"variants": len(spec.variants), "seeds": len(spec.seeds), "metrics": len(record["metrics"]),
                "budget_tokens": record["budget"]["tokens"],
                "exceeds_spread": sum(1 for v in record["verdicts"] if v["exceeds"])}

    return store.build("ablation", ABLATION_VERSION, conf, parents, write, code=stage_code("ablation"))


# ---- the report -------------------------------------------------------------------------------------------


def _cell(stat: dict[str, Any], digits: int = 3) -> str:
    std = "n/a" if stat["std"] is None else f"{stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {std}"


def verdict_lines(record: dict[str, Any]) -> list[str]:
    """One line per (bits-per-byte metric, variant): the difference to the baseline and the spread rule."""
    lines = []
    for v in record["verdicts"]:
        head = f"{v['metric']}: {v['variant']} − {record['baseline']} = {v['diff']:+.4f}"
        if v["exceeds"] is None:
            lines.append(f"{head}; one seed: no spread to compare with (use --seeds 2 or more)")
        else:
            word = "exceeds" if v["exceeds"] else "within"
            lines.append(f"{head}, pooled std {v['pooled_std']:.4f}: {word} the seed spread "
                         f"({'|Δ| >' if v['exceeds'] else '|Δ| ≤'} {SPREAD_FACTOR:g} × pooled std)")
    return lines


def markdown(record: dict[str, Any], image: str = "ablation.png") -> str:
    names = list(record["variants"])
    head = "| metric | " + " | ".join(f"{n}{' (baseline)' if n == record['baseline'] else ''}" for n in names) + " |"
    rows = [head, "|---|" + "---:|" * len(names)]
    for k in record["metrics"]:
        hint = " ↓" if k.startswith("bpb_") else " ↑"
        rows.append(f"| {k}{hint} | " + " | ".join(_cell(record["table"][n][k]) for n in names) + " |")
    keys = list(dict.fromkeys(k for n in names for k in record["variants"][n]["corpus"]))
    corpus = ["| corpus | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in keys:
        corpus.append(f"| {k} | " + " | ".join(str(record["variants"][n]["corpus"].get(k, "")) for n in names) + " |")
    b = record["budget"]
    variants = "\n".join(f"- **{n}**: " + (", ".join(f"`{k}={v}`" for k, v in record["variants"][n]["overrides"]
                                                   .items())) for n in names)
    return "\n".join([
        "# Ablation", "", variants, "",
        f"Seeds {', '.join(map(str, record['seeds']))} (`pretrain.seed`); one tokenizer `{record['tokenizer']}` "
        f"(trained on the baseline's mix); token budget {b['tokens']:,} = {b['steps']} steps × {b['batch_size']} "
        f"× {b['seq_len']} × {b['grad_accum']} (a smaller corpus is read for more epochs).", "",
        "Mean ± sample std over seeds (↓ lower is better, ↑ higher is better):", "", *rows, "",
        f"**Bits per byte against the seed spread** (rule: {record['rule']}):", "",
        *[f"- {line}" for line in verdict_lines(record)], "", *corpus, "", f"![ablation]({image})", ""])


def plot(record: dict[str, Any], path: Path) -> None:
    """Three panels, one bar per variant with the seeds' std as error bars: reference bits per byte per
    language, the centred aggregates, each task's accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(record["variants"])
    groups = [("reference bits per byte (lower is better)", [k for k in record["metrics"] if k.startswith("bpb_")]),
              ("centred accuracy (0 = chance)", [k for k in record["metrics"] if k.startswith("centred")]),
              ("accuracy per task", [k for k in record["metrics"] if k.endswith(".acc")])]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [1, 2, 4]})
    width = 0.8 / len(names)
    for panel, (ax, (title, keys)) in enumerate(zip(axes, groups)):
        for i, n in enumerate(names):
            stats = [record["table"][n][k] for k in keys]
            xs = [x + i * width for x in range(len(keys))]
            means, errs = [s["mean"] for s in stats], [s["std"] or 0 for s in stats]
            if panel == 0:  # bits per byte differ in the second decimal: points on a free axis, not bars from 0
                ax.errorbar(xs, means, yerr=errs, fmt="o", capsize=3, label=n)
            else:
                ax.bar(xs, means, width, yerr=errs, capsize=2, label=n)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(keys))],
                      [k.removesuffix(".acc").removeprefix("bpb_") for k in keys], rotation=45, ha="right")
        ax.set_title(title, fontsize=9)
        if panel:
            ax.axhline(0, color="black", linewidth=0.6)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"ablation: mean ± std over seeds {record['seeds']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def embedded_markdown(out_dir: Path) -> str:
    """``ablation.md`` with its plot inlined as a data URI (the Prefect UI cannot load local files)."""
    import base64

    md = (out_dir / "ablation.md").read_text(encoding="utf-8")
    png = out_dir / "ablation.png"
    if png.exists():
        md = md.replace("](ablation.png)", f"](data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})")
    return md
