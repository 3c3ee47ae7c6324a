"""Prefect flows and tasks: thin wrappers over ``flows.dag`` (one task per stage, one flow per DAG section).

Flows: ``corpus`` (ingest … mix), ``tokenizer`` (tokenizer, tokens), ``pretrain``, ``sft`` and ``pipeline``
(all four as subflows). Every flow takes the same parameters, so the Prefect UI's "Custom run" can do what
the CLI does:

* ``preset``: config preset name (``demo``, ``tiny``); ``overrides``: ``{"pretrain.steps": "50"}``;
* ``inputs``: raw input paths replacing the preset's; ``refresh``: stages to recompute (plus what depends
  on them); ``from_artifact``: start downstream of that artifact; ``home``: the artifact store root;
  ``incremental`` (corpus only): process only new input files into a new corpus version (``flows.refresh``).

Skipping is decided by the manifests in the store (``flows.dag``); Prefect's own task cache is off, since a
cached Prefect result can point at a deleted file. Ids are planned before anything runs, so a stage whose
manifest is complete gets no task run, and a section with nothing to do no subflow run (docs/LOG.md: ~0.6 s per
task run on the ephemeral server); their manifests are still published, marked skipped. Each stage publishes a
markdown artifact (manifest summary, parents) and a table artifact (its stats) on the flow run; ``mix`` also the
corpus report (``mix-report``), ``pretrain``/``sft`` their metrics and loss curve (``pretrain-training``,
``sft-training``); sharded stages a progress artifact (``<stage>-progress``: shards done, documents, docs/s,
ETA) updated as shards finish.
Execution settings (``execution.workers``, ``execution.executor``, ``execution.ray_address``, ``execution.slurm_*``)
go in ``overrides`` like any other key: they never change an artifact id.

Run: ``lmpipe run pipeline`` (see ``flows.cli``), or ``python -m flows.prefect_flows`` for the demo.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from flows import dag, policy
from flows.config import resolve_config
from flows.executor import warm_pool
from flows.sharded import SHARDED
from storage.lineage import lineage_lines, summarize_stats
from storage.store import ArtifactStore, Manifest


def _flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
        fr = getattr(ctx, "flow_run", None) or getattr(getattr(ctx, "task_run", None), "flow_run_id", None)
        return str(getattr(fr, "id", fr)) if fr else None
    except Exception:  # outside a run
        return None


def _key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _flatten(stats: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    rows = []
    for k, v in stats.items():
        if isinstance(v, dict):
            rows += _flatten(v, f"{prefix}{k}.")
        else:
            rows.append({"stat": f"{prefix}{k}", "value": str(v)})
    return rows


def publish(m: Manifest, built: bool, report_dir: Path | None = None) -> None:
    """Mirror a manifest into the Prefect UI: a markdown summary and a stats table."""
    status = "built" if built else "skipped (artifact already complete)"
    parents = "\n".join(f"- `{p}`" for p in m.parents) or "- (raw inputs)"
    raw = "\n".join(f"- `{i['path']}` ({i['bytes']} bytes, sha256 `{i['sha256'][:12]}`)" for i in m.inputs)
    md = (f"## {m.kind}: `{m.id}`\n\n**{status}** in {m.seconds:.1f} s · created {m.created_at} · "
          f"code `{m.code_revision}`\n\n**Parents**\n{parents}\n"
          + (f"\n**Raw inputs**\n{raw}\n" if raw else "")
          + f"\n**Stats**: {summarize_stats(m.stats)}\n\n**Files**: {len(m.files)} · path `{m.path}`\n")
    create_markdown_artifact(markdown=md, key=_key(f"{m.kind}-manifest"), description=f"{m.kind} manifest")
    rows = _flatten(m.stats)
    if rows:
        create_table_artifact(table=rows, key=_key(f"{m.kind}-stats"), description=f"{m.kind} stats")
    if report_dir is not None and (report_dir / "report.md").exists():
        # The corpus report with its PNGs inlined as data URIs: the UI renders markdown images as <img src>,
        # and a local file path would not load in the browser (see curation.report).
        from curation.report import embedded

        create_markdown_artifact(markdown=embedded(report_dir), key=_key(f"{m.kind}-report"),
                                 description=f"corpus report of {m.id} (also in {report_dir})")


def publish_training(m: Manifest, model_dir: Path) -> None:
    """Pretrain/SFT: the metrics table and the loss curve (loss.png inlined as a data URI, see model.report)."""
    from model.report import training_markdown

    md = training_markdown(model_dir, f"{m.kind} `{m.id}`: loss curve and metrics")
    if md is not None:
        create_markdown_artifact(markdown=md, key=_key(f"{m.kind}-training"), description=f"{m.kind} loss curve")


def publish_eval(m: Manifest, out_dir: Path) -> None:
    """Eval: the results table with the plot inlined (evals.harness.eval_markdown)."""
    from evals.harness import eval_markdown

    md = eval_markdown(out_dir)
    if md is not None:
        create_markdown_artifact(markdown=md, key=_key(f"{m.kind}-report"),
                                 description=f"{m.kind} of {m.parents[0]}")


def progress_reporter(name: str) -> Callable[[dict[str, Any]], None] | None:
    """A progress artifact for a sharded stage (``<stage>-progress``), created on this task run and updated from
    the executor's progress thread whenever a shard completes (``flows.executor`` snapshots)."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    try:
        artifact = create_progress_artifact(0.0, key=_key(f"{name}-progress"), description=f"{name}: starting")
    except Exception:  # noqa: BLE001 -- no API (e.g. a bare call outside a flow): no progress artifact
        return None
    last: list[tuple[str, int] | None] = [None]

    def report(snap: dict[str, Any]) -> None:
        mark = (snap["stage"], snap["shards_done"])
        if mark == last[0]:
            return
        last[0] = mark
        eta = f", ETA {snap['eta_s']:.0f} s" if snap.get("eta_s") is not None else ""
        update_progress_artifact(artifact, round(100 * snap["fraction"], 1), description=(
            f"{snap['stage']}: {snap['shards_done']}/{snap['shards']} shards, {snap['docs']} docs, "
            f"{snap['docs_per_s']:.0f} docs/s{eta}"))

    return report


def _stage_fn(name: str):
    def run(preset: str, overrides: dict[str, Any] | None, inputs: list[str] | None, home: str | None,
            ids: dict[str, str], refresh: bool) -> dict[str, Any]:
        from flows.sharded import SHARDED

        cfg = resolve_config(preset, overrides, inputs)
        store = ArtifactStore(home)
        progress = progress_reporter(name) if name in SHARDED else None
        m, built = dag.run_stage(name, cfg, store, ids, refresh, flow_run_id=_flow_run_id(), progress=progress)
        get_run_logger().info("%s %s %s (%s)", name, "built" if built else "skipped", m.id, summarize_stats(m.stats))
        publish(m, built, store.local_dir(m.id) / "report" if name == "mix" else None)
        if name in ("pretrain", "sft"):
            publish_training(m, store.local_dir(m.id))
        if name in ("eval", "eval_sft"):
            publish_eval(m, store.local_dir(m.id))
        return {"id": m.id, "built": built, "seconds": m.seconds}

    run.__name__ = f"{name}_stage"
    run.__doc__ = f"Prefect task for the '{name}' stage; the work is in the library (see flows.dag)."
    return run


# One task per stage. Retries are for transient failures (I/O); the stage itself is idempotent.
TASKS = {name: task(_stage_fn(name), name=name, cache_policy=NO_CACHE, retries=0)
         for name in [*dag.ORDER, dag.CRAWL.name]}


def _checked_config(preset: str, overrides: dict[str, Any] | None, inputs: list[str] | None,
                    home: str | None) -> Any:
    """The resolved config; in a deployment run, only what the worker's environment allows (flows.policy)."""
    cfg = resolve_config(preset, overrides, inputs)
    if policy.from_deployment():
        policy.check(cfg, home)
    return cfg


def _run_section(flow_name: str, preset: str, overrides: dict[str, Any] | None, inputs: list[str] | None,
                 refresh: list[str] | None, from_artifact: str | None, home: str | None) -> dict[str, Any]:
    """Run one section's stages as tasks; returns ``{stage: {"id", "built", "seconds"}}`` incl. given ones."""
    cfg = _checked_config(preset, overrides, inputs, home)  # fail fast on bad config
    store = ArtifactStore(home)
    store.clean_tmp()
    known = dag.known_from(store, from_artifact)
    force = dag.expand_refresh(refresh)
    ids = dict(known)
    results: dict[str, Any] = {k: {"id": v, "built": False, "seconds": 0.0, "given": True} for k, v in known.items()}
    # A stage whose planned id already has a complete manifest gets no Prefect task (a task run is several API
    # round trips; docs/LOG.md has the numbers): its manifest is published on the flow run ("skipped") instead.
    planned = dag.plan_ids(flow_name, cfg, known)
    names = dag.with_crawl(dag.stages_after(flow_name, known), cfg)  # crawl: only with seeds
    # quality_model runs beside langid … dedup (a submitted task: Prefect's thread runner; its work is in a pool
    # process) as soon as ingest exists, when there is more than one worker (flows.dag.BESIDE).
    early = [n for n in names if dag.runs_beside(n, cfg) and (n in force or not store.exists(planned[n]))]
    if any(n in SHARDED and (n in force or not store.exists(planned[n])) for n in names):
        warm_pool(cfg.execution)  # the pool starts while Prefect creates the first task runs
    pending: dict[str, Any] = {}
    for name in names:
        for b in [b for b in early if all(p in ids for p in dag.STAGES[b].parents)]:
            early.remove(b)
            pending[b] = TASKS[b].submit(preset, overrides, inputs, home, dict(ids), b in force)
        if name in pending:
            continue
        for p in dag.waits_for(name, pending):
            results[p] = pending.pop(p).result()
            ids[p] = results[p]["id"]
        if name not in force and store.exists(planned[name]):
            m = store.get(planned[name])
            publish(m, False)
            results[name] = {"id": m.id, "built": False, "seconds": m.seconds}
        else:
            results[name] = TASKS[name](preset, overrides, inputs, home, dict(ids), name in force)
        ids[name] = results[name]["id"]
    for p in list(pending):
        results[p] = pending.pop(p).result()
        ids[p] = results[p]["id"]
    return results


def _run_incremental(preset: str, overrides: dict[str, Any] | None, inputs: list[str] | None,
                     refresh: list[str] | None, from_artifact: str | None, home: str | None) -> dict[str, Any]:
    """One corpus refresh (``flows.refresh``): the delta's stages as tasks, then the new version."""
    from flows import refresh as refresh_mod

    files = refresh_mod.incremental_inputs("corpus", from_artifact, inputs)  # directories re-listed now
    cfg = _checked_config(preset, overrides, files or None, home)
    store = ArtifactStore(home)
    store.clean_tmp()

    def stage(name: str, stage_cfg: Any, ids: dict[str, str], force: bool) -> dict[str, Any]:
        delta_overrides = {**(overrides or {}), **refresh_mod.stage_overrides(stage_cfg)}
        return TASKS[name](preset, delta_overrides, list(stage_cfg.inputs), home, ids, force)

    results = refresh_mod.run_incremental(
        store, cfg, list(cfg.inputs) if files is None else files, stage, refresh, flow_run_id=_flow_run_id(),
        on_version=lambda m, built: publish(m, built, store.local_dir(m.id) / "report"))
    line = refresh_mod.describe(results["refresh"])
    get_run_logger().info(line)
    create_markdown_artifact(markdown=f"## Corpus refresh\n\n{line}\n", key="corpus-refresh",
                             description="what this refresh processed")
    return results


@flow(name="corpus", log_prints=True)
def corpus_flow(preset: str = "demo", overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
                refresh: list[str] | None = None, from_artifact: str | None = None,
                home: str | None = None, incremental: bool = False) -> dict[str, Any]:
    """Raw WARC/JSONL → extracted, language-identified, filtered, deduplicated, scored (quality model trained in
    the ``quality_model`` task: reference text vs the raw crawl), mixed Parquet.

    ``incremental=True`` (the scheduled refresh): only the input files that no corpus version covers yet (a
    directory input is re-listed at each run) are processed, into a new corpus version (``flows.refresh``).
    """
    if incremental:
        return _run_incremental(preset, overrides, inputs, refresh, from_artifact, home)
    return _run_section("corpus", preset, overrides, inputs, refresh, from_artifact, home)


@flow(name="tokenizer", log_prints=True)
def tokenizer_flow(preset: str = "demo", overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
                   refresh: list[str] | None = None, from_artifact: str | None = None,
                   home: str | None = None) -> dict[str, Any]:
    """Mixed corpus → sentencepiece BPE tokenizer → token shards."""
    return _run_section("tokenizer", preset, overrides, inputs, refresh, from_artifact, home)


@flow(name="pretrain", log_prints=True)
def pretrain_flow(preset: str = "demo", overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
                  refresh: list[str] | None = None, from_artifact: str | None = None,
                  home: str | None = None) -> dict[str, Any]:
    """Token shards → pretrained Llama-style model (a subprocess; GPU when there is one)."""
    return _run_section("pretrain", preset, overrides, inputs, refresh, from_artifact, home)


@flow(name="sft", log_prints=True)
def sft_flow(preset: str = "demo", overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
             refresh: list[str] | None = None, from_artifact: str | None = None,
             home: str | None = None) -> dict[str, Any]:
    """Pretrained model + instruction data → SFT model (assistant-only loss)."""
    return _run_section("sft", preset, overrides, inputs, refresh, from_artifact, home)


SECTION_FLOWS = {"corpus": corpus_flow, "tokenizer": tokenizer_flow, "pretrain": pretrain_flow, "sft": sft_flow}


@flow(name="pipeline", log_prints=True)
def pipeline_flow(preset: str = "demo", overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
                  refresh: list[str] | None = None, from_artifact: str | None = None,
                  home: str | None = None) -> dict[str, Any]:
    """The whole DAG: corpus → tokenizer → pretrain → sft, each a subflow; ends with a lineage artifact."""
    cfg = _checked_config(preset, overrides, inputs, home)
    store = ArtifactStore(home)
    known = dag.known_from(store, from_artifact)
    dag.check_refresh_from(refresh, known)
    force = dag.expand_refresh(refresh)
    results: dict[str, Any] = {k: {"id": v, "built": False, "seconds": 0.0, "given": True} for k, v in known.items()}
    start = from_artifact
    for section, fl in SECTION_FLOWS.items():
        if not dag.stages_after(section, {k: v["id"] for k, v in results.items()}):
            continue
        planned = dag.plan_ids(section, cfg, {k: v["id"] for k, v in results.items()})
        if not set(planned) & force and all(store.exists(i) for i in planned.values()):
            # A section with nothing to do gets no subflow run either (a flow run costs ~1-2 s of API calls):
            # its manifests are published on this run, marked skipped, as _run_section does per stage.
            for name, aid in planned.items():
                m = store.get(aid)
                publish(m, False)
                results[name] = {"id": aid, "built": False, "seconds": m.seconds}
            start = results[dag.FLOWS[section][-1]]["id"]
            continue
        out = fl(preset=preset, overrides=overrides, inputs=inputs, refresh=refresh, from_artifact=start, home=home)
        for k, v in out.items():
            if not (v.get("given") and k in results):
                results[k] = v
        start = results[dag.FLOWS[section][-1]]["id"]
    last = results[dag.ORDER[-1]]["id"]
    create_markdown_artifact(markdown="## Lineage\n\n```\n" + "\n".join(lineage_lines(store, last)) + "\n```\n",
                             key="lineage", description="lineage of the final artifact")
    return results


FLOW_FUNCS = {**SECTION_FLOWS, "pipeline": pipeline_flow}


class PrefectStages:
    """The ablation's stages (``flows.ablate.Stages``) on Prefect: the corpus as a ``corpus`` subflow, the other
    stages as this module's tasks; an artifact already complete gets no run, only its manifest published."""

    def __init__(self, preset: str, inputs: list[str] | None, home: str | None) -> None:
        self.preset, self.inputs, self.home, self.store = preset, inputs, home, ArtifactStore(home)

    def _done(self, aid: str) -> dict[str, Any]:
        m = self.store.get(aid)
        publish(m, False)
        return {"id": aid, "built": False, "seconds": m.seconds}

    def corpus(self, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
        planned = dag.plan_ids("corpus", resolve_config(self.preset, overrides, self.inputs), {})
        if all(self.store.exists(i) for i in planned.values()):
            return {name: self._done(aid) for name, aid in planned.items()}
        return corpus_flow(preset=self.preset, overrides=overrides, inputs=self.inputs, home=self.home)

    def stage(self, name: str, overrides: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
        aid = dag.planned_id(name, resolve_config(self.preset, overrides, self.inputs), ids)
        if self.store.exists(aid):
            return self._done(aid)
        return TASKS[name](self.preset, overrides, self.inputs, self.home, dict(ids), False)

    def publish(self, manifest: Manifest, built: bool) -> None:
        from flows.ablate import embedded_markdown

        publish(manifest, built)
        create_markdown_artifact(markdown=embedded_markdown(self.store.local_dir(manifest.id)), key="ablation",
                                 description=f"comparison {manifest.id}: mean ± std over seeds, per variant")


@flow(name="ablate", log_prints=True)
def ablate_flow(preset: str = "ablate", variants: list[str] | None = None, seeds: int = 2,
                overrides: dict[str, Any] | None = None, inputs: list[str] | None = None,
                home: str | None = None) -> dict[str, Any]:
    """One proxy model per variant (``NAME=KEY=VALUE,...``) and seed, same tokenizer and token budget, each
    evaluated; ends with the ``ablation`` comparison artifact (flows.ablate)."""
    from flows import ablate

    spec = ablate.make_spec(preset, variants or [], seeds, overrides or {}, inputs)
    store = ArtifactStore(home)
    store.clean_tmp()
    ablate.precheck(spec, store)
    out = ablate.run_ablation(spec, PrefectStages(preset, inputs, home), store)
    return {**out, "dir": str(out["dir"])}

if __name__ == "__main__":
    print(pipeline_flow())
