"""The DAG itself, without Prefect: stage table, artifact ids, skip/refresh/--from logic.

Prefect (``flows.prefect_flows``) and the ``--no-prefect`` path both drive the same functions here, so both
compute the same artifact ids and decide "already done" the same way: by the manifest in the store, not by
Prefect's cache.

    ingest ─► langid ─► filter ─► dedup ─► quality ─► mix ─► tokenizer ─► tokens ─► pretrain ─► sft
                                                        └─────────────────────────┘ (tokens reads mix too)

Each stage's artifact id covers: the stage's code version, its config section, and its parents' ids; the
``ingest`` stage also covers the name and SHA-256 of each raw input, and ``sft`` those of the instruction data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flows.config import PipelineConfig, UserError
from storage.store import ArtifactNotFound, ArtifactStore, Manifest, sha256_file


@dataclass(frozen=True)
class Stage:
    name: str
    version: str  # bump when the stage's output semantics change: a new id, so old artifacts are not reused
    parents: tuple[str, ...]


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("ingest", "1", ()),
    Stage("langid", "2", ("ingest",)),  # 2: script rules in front of lid.176
    Stage("filter", "2", ("langid",)),  # 2: C4/FineWeb/zh rule sets, PII scrubbing
    Stage("dedup", "2", ("filter",)),  # 2: recall-first bands + exact-Jaccard verification, index
    Stage("quality", "1", ("dedup",)),
    Stage("mix", "1", ("quality",)),
    Stage("tokenizer", "2", ("mix",)),  # 2: cross-word/cross-script pieces, HF export in hf/
    Stage("tokens", "1", ("mix", "tokenizer")),
    Stage("pretrain", "1", ("tokens",)),
    Stage("sft", "1", ("pretrain",)),
]}
ORDER = list(STAGES)

FLOWS: dict[str, list[str]] = {
    "corpus": ["ingest", "langid", "filter", "dedup", "quality", "mix"],
    "tokenizer": ["tokenizer", "tokens"],
    "pretrain": ["pretrain"],
    "sft": ["sft"],
}
FLOWS["pipeline"] = [s for f in ("corpus", "tokenizer", "pretrain", "sft") for s in FLOWS[f]]


def downstream(stage: str) -> set[str]:
    """The stage and every stage that depends on it, directly or not."""
    out = {stage}
    changed = True
    while changed:
        changed = False
        for s in STAGES.values():
            if s.name not in out and any(p in out for p in s.parents):
                out.add(s.name)
                changed = True
    return out


def expand_refresh(refresh: list[str] | None) -> set[str]:
    """``--refresh STAGE`` recomputes that stage and what depends on it, nothing upstream."""
    out: set[str] = set()
    for r in refresh or []:
        if r == "all":
            return set(ORDER)
        if r not in STAGES:
            raise UserError(f"unknown stage '{r}'; stages are: {', '.join(ORDER)} (or 'all')")
        out |= downstream(r)
    return out


def known_from(store: ArtifactStore, from_artifact: str | None) -> dict[str, str]:
    """Stage -> artifact id for ``--from ID`` and all of its ancestors (they are taken as they are)."""
    if not from_artifact:
        return {}
    try:
        return {m.kind: m.id for m in store.ancestors(from_artifact) if m.kind in STAGES}
    except ArtifactNotFound as e:
        raise UserError(str(e)) from None


def check_refresh_from(refresh: list[str] | None, known: dict[str, str]) -> None:
    """``--refresh`` of a stage that ``--from`` takes as given would be silently ignored: refuse it."""
    expand_refresh(refresh)
    for r in refresh or []:
        if r in known:
            raise UserError(f"--refresh {r} names a stage upstream of --from {known[r]}; drop --from to recompute it")


def stages_after(flow: str, known: dict[str, str]) -> list[str]:
    """The stages of ``flow`` that are not already fixed by ``--from``."""
    if flow not in FLOWS:
        raise UserError(f"unknown flow '{flow}'; flows are: {', '.join(FLOWS)}")
    return [s for s in FLOWS[flow] if s not in known]


def _file_digests(paths: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(for the id: name + sha256; for the manifest: full path + sha256 + bytes) of raw input files."""
    for_id, for_manifest = [], []
    for p in paths:
        digest = sha256_file(p)
        for_id.append({"name": os.path.basename(p), "sha256": digest})
        for_manifest.append({"path": os.path.abspath(p), "sha256": digest, "bytes": os.path.getsize(p)})
    return for_id, for_manifest


def stage_identity(name: str, cfg: PipelineConfig, ids: dict[str, str]) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(config that goes into the id, parent ids, raw inputs for the manifest) of one stage."""
    stage = STAGES[name]
    missing = [p for p in stage.parents if p not in ids]
    if missing:
        raise UserError(f"stage '{name}' needs the '{missing[0]}' artifact first; run its flow or pass --from ID")
    conf: dict[str, Any] = getattr(cfg, name).model_dump(mode="json")
    raw: list[dict[str, Any]] = []
    if name == "ingest":
        conf["inputs"], raw = _file_digests(cfg.inputs)
    elif name == "sft":
        conf["data"], raw = _file_digests(cfg.sft_data)
    return conf, [ids[p] for p in stage.parents], raw


def planned_id(name: str, cfg: PipelineConfig, ids: dict[str, str]) -> str:
    conf, parents, _ = stage_identity(name, cfg, ids)
    from storage.store import compute_id
    return compute_id(name, STAGES[name].version, conf, parents)


def _run_subprocess(module: str, args: list[str], nproc: int = 1) -> dict[str, Any]:
    """Training runs as a subprocess (isolates torch/CUDA from the orchestrator, avoids Prefect fork issues).

    With ``nproc`` > 1 it is launched by torchrun (``python -m torch.distributed.run --standalone``), one process
    per rank. Its stderr streams through; its last stdout line is the JSON stats (only rank 0 prints them).
    """
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    cmd = [sys.executable, *launcher, "-m", module, *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parent.parent))
    if proc.returncode != 0:
        raise RuntimeError(f"`{module} …` ({nproc} process(es)) exited with code {proc.returncode} (see its log above)")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def _compute(name: str, cfg: PipelineConfig, store: ArtifactStore, ids: dict[str, str]) -> Callable[[Path], dict[str, Any]]:
    """The function that fills an artifact directory for stage ``name`` (calls the plain library)."""
    parents = {p: store.get(ids[p]) for p in STAGES[name].parents}

    def parquet_of(m: Manifest) -> list[str]:
        local = store.local_dir(m.id)
        return [str(local / f["path"]) for f in m.files
                if f["path"].endswith(".parquet") and not f["path"].startswith("removed/")]

    if name in FLOWS["corpus"]:
        from curation import stages as cs

        fn = getattr(cs, f"run_{name}")
        inputs = list(cfg.inputs) if name == "ingest" else parquet_of(parents[STAGES[name].parents[0]])
        return lambda out: fn(inputs, out, getattr(cfg, name))
    if name == "tokenizer":
        from tokenizer.stages import run_tokenizer

        return lambda out: run_tokenizer(parquet_of(parents["mix"]), out, cfg.tokenizer)
    if name == "tokens":
        from tokenizer.stages import run_tokens

        tok_dir = store.local_dir(ids["tokenizer"])
        return lambda out: run_tokens(parquet_of(parents["mix"]), out, cfg.tokens, tok_dir)
    if name == "pretrain":
        tokens = store.get(ids["tokens"])
        tok_dir = store.local_dir(tokens.parents[0] if tokens.parents[0].startswith("tokenizer-")
                                  else tokens.parents[1])
        return lambda out: _run_subprocess("model.pretrain", [
            "--tokens", str(store.local_dir(ids["tokens"])), "--out", str(out),
            "--config", json.dumps(cfg.pretrain.model_dump(mode="json")), "--tokenizer", str(tok_dir)],
            nproc=getattr(cfg.pretrain, "nproc", 1))
    if name == "sft":
        return lambda out: _run_subprocess("model.sft", [
            "--base", str(store.local_dir(ids["pretrain"])), "--out", str(out),
            "--config", json.dumps(cfg.sft.model_dump(mode="json")), "--data", *cfg.sft_data])
    raise UserError(f"unknown stage '{name}'")


def run_stage(name: str, cfg: PipelineConfig, store: ArtifactStore, ids: dict[str, str], refresh: bool,
              flow_run_id: str | None = None) -> tuple[Manifest, bool]:
    """Compute (or find) one stage's artifact. Returns ``(manifest, built)``."""
    conf, parents, raw = stage_identity(name, cfg, ids)
    return store.build(name, STAGES[name].version, conf, parents, _compute(name, cfg, store, ids),
                       inputs=raw, refresh=refresh, flow_run_id=flow_run_id)


def run_flow_plain(flow: str, cfg: PipelineConfig, store: ArtifactStore, refresh: list[str] | None,
                   from_artifact: str | None) -> dict[str, Any]:
    """Run a flow's stages in order with plain function calls (the ``--no-prefect`` path).

    Returns ``{stage: {"id", "built", "seconds"}}`` like the Prefect flows.
    """
    store.clean_tmp()
    known = known_from(store, from_artifact)
    check_refresh_from(refresh, known)
    force = expand_refresh(refresh)
    ids = dict(known)
    results: dict[str, Any] = {k: {"id": v, "built": False, "seconds": 0.0, "given": True} for k, v in known.items()}
    for name in stages_after(flow, known):
        m, built = run_stage(name, cfg, store, ids, name in force)
        ids[name] = m.id
        results[name] = {"id": m.id, "built": built, "seconds": m.seconds}
    return results
