"""The DAG itself, without Prefect: stage table, artifact ids, skip/refresh/--from logic.

Prefect (``flows.prefect_flows``) and the ``--no-prefect`` path both drive the same functions here, so both
compute the same artifact ids and decide "already done" the same way: by the manifest in the store, not by
Prefect's cache.

    ingest ─► langid ─► filter ─► dedup ─► quality ─► mix ─► tokenizer ─► tokens ─► pretrain ─► sft
     └───────────────────────► quality_model ─┘        └─────────────────────┘ (tokens reads mix too)

Each stage's artifact id covers: the stage's code version, its config section, and its parents' ids; the
``ingest`` stage also covers the name and SHA-256 of each raw input, ``sft`` those of the instruction data and
``quality_model`` those of its reference and label files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flows.config import PipelineConfig, UserError
from flows.executor import ProgressFn
from storage.store import ArtifactNotFound, ArtifactStore, Manifest


@dataclass(frozen=True)
class Stage:
    name: str
    version: str  # bump when the stage's output semantics change: a new id, so old artifacts are not reused
    parents: tuple[str, ...]


STAGES: dict[str, Stage] = {s.name: s for s in [
    # ingest 2: own main-content scorer (trafilatura fallback), drop reasons, globs/URLs; 3: extractor pass 2,
    # ingest.fallback; 4: <section> votes, narrower tag rule;
    Stage("ingest", "8", ()),
    # 5: no fallback under 2500 chars of page text (ingest.fallback_min_page_chars), headings as paragraphs,
    # teaser headlines kept; 6: one shard per raw input file (docs-{rank}.parquet), every sharded stage below
    # keeps its parent's shards (their versions were bumped with it: 5, 3, 4, 5); 7: reader-comment threads cut,
    # "comment" blocks and gallery/sharing chrome lines dropped, article <form>s kept, relaxed retry of emptied pages;
    # 8: comment blocks before scoring, a body nested in <head> found, declared charsets kept despite a few bad
    # bytes, Chinese related-stories/comment headings end the text
    Stage("langid", "7", ("ingest",)),  # 3: single-script rules + English wordlist; 4: foreign-segment cap;
    # 6: mojibake repaired (ftfy's encoding fixes; UTF-8 read as GBK) or dropped before identification, texts of
    # <= 40 characters scored by the short-text model; 7: short kanji-only Japanese lines (ja:zh character model),
    # address-only short texts have no language, lid.176 reads the first 5,000 characters
    Stage("filter", "5", ("langid",)),  # 2: C4/FineWeb/zh rule sets, PII scrubbing; 4: eval decontamination;
    # 5: Chinese web spam (curation.spam)
    Stage("dedup", "4", ("filter",)),  # 2: recall-first bands + exact-Jaccard verification, index;
    # 3: a document seen again unchanged in a later batch (same id as the indexed one) is dropped
    # quality_model: the learned scorer, reference text vs raw crawl (+ labels); 2: clipped inputs, windowed TTR;
    Stage("quality_model", "6", ("ingest",)),
    # 3: table markup stripped before the statistics, no `pipes` statistic; 4: negatives sampled while streaming
    # (bottom-k pieces by hash(seed, id, piece)); 5: the shipped default is the plain-statistics model;
    # 6: a trained model's per-language logit shift from its reference text
    # quality 2: scores with the learned model; 3: its v2 inputs; 4: its v3 inputs; 5: sharded; 6: plain-statistics
    # model with a per-language logit shift (one threshold for en and zh)
    Stage("quality", "6", ("dedup", "quality_model")),
    Stage("mix", "3", ("quality",)),  # 2: source weights, per-language thresholds, top-k, rehydration, budget, report/;
    # 3: two streaming passes and an external bucketed shuffle (shards byte-identical), report from streamed
    # histograms and a 10,000-score sample per language
    Stage("tokenizer", "5", ("mix",)),  # 2: cross-word/cross-script pieces, HF export in hf/; 3: "▁0".."▁9",
    # indentation with the newline, repeated lines once; 4: "▁" + punctuation, digit + letter pieces;
    # 5: added pieces only from characters that are pieces (the HF export encodes identically)
    Stage("tokens", "1", ("mix", "tokenizer")),
    Stage("pretrain", "1", ("tokens",)),
    # Evaluation of each model (evals.harness): reference bits per byte + the multiple-choice suite.
    Stage("eval", "1", ("pretrain",)),
    Stage("sft", "1", ("pretrain",)),
    Stage("eval_sft", "1", ("sft",)),
]}
ORDER = list(STAGES)
# The optional source stage: it exists in a run only when `crawl.seeds` or `crawl.seeds_file` is set; then its
# WARC files are extra `ingest` inputs and its id is ingest's parent. Kept out of STAGES/ORDER so that runs
# without seeds have exactly the stages and artifact ids they had before (curation/crawl.py).
CRAWL = Stage("crawl", "1", ())


def _stage(name: str) -> Stage:
    return CRAWL if name == CRAWL.name else STAGES[name]


def crawl_enabled(cfg: PipelineConfig) -> bool:
    return bool(cfg.crawl.seeds or cfg.crawl.seeds_file)


def with_crawl(names: list[str], cfg: PipelineConfig) -> list[str]:
    """``names`` with ``crawl`` in front when it is configured and ``ingest`` is among them."""
    return [CRAWL.name, *names] if crawl_enabled(cfg) and "ingest" in names else names

FLOWS: dict[str, list[str]] = {
    "corpus": ["ingest", "langid", "filter", "dedup", "quality_model", "quality", "mix"],
    "tokenizer": ["tokenizer", "tokens"],
    "pretrain": ["pretrain", "eval"],
    "sft": ["sft", "eval_sft"],
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
    """``--refresh STAGE`` recomputes that stage and what depends on it, nothing upstream (``stale`` is resolved
    to stage names by `stale_stages` before the flow runs)."""
    out: set[str] = set()
    for r in refresh or []:
        if r == STALE:
            continue
        if r == "all":
            return set(ORDER) | {CRAWL.name}
        if r == CRAWL.name:  # crawl again: the web changed, the config did not
            out |= {CRAWL.name} | downstream("ingest")
            continue
        if r not in STAGES:
            raise UserError(f"unknown stage '{r}'; stages are: {', '.join(ORDER)} (or 'all')")
        out |= downstream(r)
    return out


def known_from(store: ArtifactStore, from_artifact: str | None) -> dict[str, str]:
    """Stage -> artifact id for ``--from ID`` and all of its ancestors (they are taken as they are)."""
    if not from_artifact:
        return {}
    try:
        known: dict[str, str] = {}
        for m in store.ancestors(from_artifact):  # the artifact itself comes first: it wins over older ones
            if m.kind in STAGES:  # of its kind (a corpus version's parents include the previous mix)
                known.setdefault(m.kind, m.id)
        return known
    except ArtifactNotFound as e:
        raise UserError(str(e)) from None


STALE = "stale"


def stale_stages(flow: str, cfg: PipelineConfig, store: ArtifactStore, known: dict[str, str]) -> dict[str, list[str]]:
    """``{stage: what changed}`` for the flow's stages whose planned artifact exists but was built by other code
    than the installed one (``flows.provenance``): what ``--refresh stale`` rebuilds (with what follows them)."""
    from flows.provenance import changes

    out = {}
    for name, aid in plan_ids(flow, cfg, known).items():
        if name not in known and store.exists(aid):
            changed = changes(store.get(aid).code, name)
            if changed:
                out[name] = changed
    return out


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
    """(for the id: name + sha256; for the manifest: full path + sha256 + bytes) of raw input files.

    An fsspec URL (``s3://…``; a glob or prefix stands for its files) is hashed by streaming it, never downloaded
    whole; the manifest keeps the URL as its path."""
    from storage.remote import file_digest, is_url

    for_id, for_manifest = [], []
    for given in paths:
        if is_url(given):
            from curation.readers import expand_inputs

            files = expand_inputs([given])
        else:
            files = [given]
        for p in files:
            digest, size = file_digest(p)
            for_id.append({"name": os.path.basename(p.rstrip("/")), "sha256": digest})
            for_manifest.append({"path": p if is_url(p) else os.path.abspath(p), "sha256": digest, "bytes": size})
    return for_id, for_manifest


def _shipped_quality_model() -> Path:
    from curation.quality import DEFAULT_MODEL
    return DEFAULT_MODEL


def stage_identity(name: str, cfg: PipelineConfig,
                   ids: dict[str, str]) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(config that goes into the id, parent ids, raw inputs for the manifest) of one stage."""
    stage = _stage(name)
    missing = [p for p in stage.parents if p not in ids]
    if missing:
        raise UserError(f"stage '{name}' needs the '{missing[0]}' artifact first; run its flow or pass --from ID")
    section = "eval" if name == "eval_sft" else name  # both eval nodes read the `eval` section
    conf: dict[str, Any] = getattr(cfg, section).model_dump(mode="json")
    raw: list[dict[str, Any]] = []
    if name == "ingest":
        conf["inputs"], raw = _file_digests(cfg.inputs)
        if crawl_enabled(cfg):  # the crawl's id (planned from its config when not run yet) is ingest's parent
            return conf, [ids.get(CRAWL.name) or planned_id(CRAWL.name, cfg, {})], raw
    elif name == CRAWL.name and cfg.crawl.seeds_file:
        conf["seeds_file"], raw = _file_digests([cfg.crawl.seeds_file])
    elif name == "sft":
        conf["data"], raw = _file_digests(cfg.sft_data)
    elif name == "filter":  # the spam word lists and the eval sets it keeps out count by content
        if cfg.filter.spam:
            from curation import spam

            conf["spam_lexicon"] = spam.fingerprint()
        if cfg.filter.decontam:
            from evals.decontam import fingerprint
            from evals.tasks import extra_files

            conf["decontam_index"] = fingerprint()
            conf["decontam_extra"], raw = _file_digests(extra_files(cfg.filter.decontam_extra))
    elif section == "eval":  # the shipped eval files and the user's extra sets count by content
        from evals.tasks import data_digest, extra_files

        conf["shipped_data"] = data_digest()
        conf["extra_tasks"], raw = _file_digests(extra_files(cfg.eval.extra_tasks))
    elif name == "quality_model":  # reference and label files count by content, not by path
        conf["positives"], raw = _file_digests(cfg.quality_model.positives)
        if cfg.quality_model.labels:
            conf["labels"], labels_raw = _file_digests([cfg.quality_model.labels])
            raw += labels_raw
        if not cfg.quality_model.positives:  # the stage copies the shipped model: a rebuilt one is a new id
            conf["shipped_model"], shipped_raw = _file_digests([str(_shipped_quality_model())])
            raw += shipped_raw
    elif name == "quality" and cfg.quality.model_path:  # an explicit model file (or the shipped one) by content
        path = cfg.quality.model_path
        if path != "default" and not os.path.isfile(path):
            raise UserError(f"quality.model_path '{path}' is not a file; name a model written by "
                            "`python -m curation.quality train --out FILE`, or 'default' for the shipped one")
        conf["model"], raw = _file_digests([str(_shipped_quality_model()) if path == "default" else path])
    return conf, [ids[p] for p in stage.parents], raw


def planned_id(name: str, cfg: PipelineConfig, ids: dict[str, str]) -> str:
    conf, parents, _ = stage_identity(name, cfg, ids)
    from storage.store import compute_id
    return compute_id(name, _stage(name).version, conf, parents)


def plan_ids(flow: str, cfg: PipelineConfig, known: dict[str, str]) -> dict[str, str]:
    """The id each stage of ``flow`` after ``known`` will have, before anything runs.

    Ids depend on config, code version and parent ids only, never on outputs, so the whole flow can be planned
    up front: a stage whose planned id has a complete manifest (and is not refreshed) needs no work at all.
    """
    ids = dict(known)
    names = with_crawl(stages_after(flow, known), cfg)
    for name in names:
        ids[name] = planned_id(name, cfg, ids)
    return {name: ids[name] for name in names}


def _run_subprocess(module: str, args: list[str], nproc: int = 1, torchrun: list[str] | None = None) -> dict[str, Any]:
    """Training runs as a subprocess (isolates torch/CUDA from the orchestrator, avoids Prefect fork issues).

    With ``nproc`` > 1 it is launched by torchrun (``python -m torch.distributed.run --standalone``), one process
    per rank; ``torchrun`` replaces those options (node 0 of a multi-node run: ``model.launch.node0_launch``).
    Its stderr streams through and into a log file next to the build directory (kept only when it fails); its
    last stdout line is the JSON stats (only rank 0 prints them). A failure ends in one ``UserError`` line with
    the child's own last error line and the log path; its traceback stays in the log.
    """
    if torchrun is None:
        torchrun = ["--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    launcher = ["-m", "torch.distributed.run", *torchrun] if torchrun else []
    cmd = [sys.executable, *launcher, "-m", module, *args]
    log = _log_path(module, args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                cwd=str(Path(__file__).resolve().parent.parent))
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        last_error = _tee(proc.stderr, sink)  # type: ignore[arg-type]
        code = proc.wait()
        reader.join()
    if code != 0:
        why = f": {last_error}" if last_error else ""
        raise UserError(f"{module} ({nproc} process(es)) exited with code {code}{why}; full log: {log}")
    log.unlink(missing_ok=True)  # kept only to explain a failure
    lines = [ln for ln in "".join(out).strip().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def _log_path(module: str, args: list[str]) -> Path:
    """``<kind>/.log-<id>.txt`` beside the build directory given as ``--out`` (a temporary file otherwise)."""
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
        return out.with_name(out.name.replace(".tmp-", ".log-", 1) + ".txt")
    import tempfile

    return Path(tempfile.gettempdir()) / "lmpipe-logs" / f"{module}-{os.getpid()}.txt"


def _tee(stream: Any, sink: Any) -> str:
    """Copy ``stream`` to ``sink`` and to stderr, until a traceback starts (the rest goes to ``sink`` only);
    returns the last line of a traceback (the exception), or the last non-empty line."""
    echo, last, exception = True, "", ""
    for line in stream:
        sink.write(line)
        sink.flush()
        if line.startswith("Traceback (most recent call last)") or "Traceback (most recent call last)" in line[:40]:
            echo = False
        if echo:
            sys.stderr.write(line)
        if line.strip():
            last = line.strip()
            if not line[:1].isspace() and ("Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]):
                exception = last
    return exception or last[:300]


def _compute(name: str, cfg: PipelineConfig, store: ArtifactStore, ids: dict[str, str],
             progress: ProgressFn | None = None) -> Callable[[Path], dict[str, Any]]:
    """The function that fills an artifact directory for stage ``name`` (calls the plain library)."""
    parents = {p: store.get(ids[p]) for p in _stage(name).parents}

    def parquet_of(m: Manifest, in_place: bool = False) -> list[str]:
        """The artifact's document shards in rank order (top-level Parquet files; not removed/, not logs/).
        ``in_place``: read where they are (URLs on a remote store), for readers that stream them
        (`curation.documents.read_documents`); otherwise from a local copy of the artifact."""
        shards = sorted(f["path"] for f in m.files if f["path"].endswith(".parquet") and "/" not in f["path"])
        if in_place:
            return store.shard_paths(m, shards)
        local = store.local_dir(m.id)
        return [str(local / rel) for rel in shards]

    if name in FLOWS["corpus"]:
        from curation import stages as cs
        from flows.executor import run_off_process
        from flows.sharded import SHARDED, run_sharded

        fn = getattr(cs, f"run_{name}")
        extra: tuple[Any, ...] = ()
        if name == "quality":
            extra = (str(store.local_dir(ids["quality_model"]) / cs.QUALITY_MODEL_NAME),)
        if name == "ingest":
            from curation.readers import expand_inputs

            inputs = [str(p) for p in expand_inputs(list(cfg.inputs))]
        else:  # the sharded stages and quality_model stream their parent's shards; mix reads a local copy
            inputs = parquet_of(parents[STAGES[name].parents[0]], in_place=name in (*SHARDED, "quality_model"))
        if name == "ingest" and crawl_enabled(cfg):
            crawl = store.get(ids.get(CRAWL.name) or planned_id(CRAWL.name, cfg, {}))
            inputs += [str(store.local_dir(crawl.id) / f["path"]) for f in crawl.files
                       if f["path"].endswith(".warc.gz")]
        if name == "mix":
            return lambda out: mix_with_report(inputs, out, cfg, store, ids)
        if name == "ingest":
            return lambda out: _ingest(inputs, out, cfg, progress)
        if name in SHARDED:
            return lambda out: run_sharded(name, inputs, out, getattr(cfg, name), cfg.execution, progress, extra)
        if name == "quality_model":  # in a pool process: it runs beside langid … dedup (see BESIDE)
            return lambda out: run_off_process(fn, inputs, out, cfg.quality_model, execution=cfg.execution)
        return lambda out: fn(inputs, out, getattr(cfg, name))
    if name == CRAWL.name:
        from curation.crawl import config_seeds, run_crawl

        return lambda out: run_crawl(config_seeds(cfg.crawl), out, cfg.crawl)
    if name == "tokenizer":
        from tokenizer.stages import run_tokenizer

        return lambda out: run_tokenizer(parquet_of(parents["mix"]), out, cfg.tokenizer)
    if name == "tokens":
        from tokenizer.stages import run_tokens

        tok_dir = store.local_dir(ids["tokenizer"])
        return lambda out: run_tokens(parquet_of(parents["mix"]), out, cfg.tokens, tok_dir)
    if name == "pretrain":
        from model.launch import node0_launch  # no torch import: the launch options and the other nodes' command

        tokens = store.get(ids["tokens"])
        tok_dir = store.local_dir(tokens.parents[0] if tokens.parents[0].startswith("tokenizer-")
                                  else tokens.parents[1])
        # --resume-latest: a re-run of a killed or failed build continues from the last complete checkpoint that
        # the trainer left in its (kept, see run_stage) build directory; the config carries the save cadence.
        return lambda out: _run_subprocess("model.pretrain", [
            "--tokens", str(store.local_dir(ids["tokens"])), "--out", str(out),
            "--config", cfg.pretrain.cli_json(), "--tokenizer", str(tok_dir), "--resume-latest"],
            nproc=cfg.pretrain.nproc, torchrun=node0_launch(cfg.pretrain))
    if name == "sft":
        return lambda out: _run_subprocess("model.sft", [
            "--base", str(store.local_dir(ids["pretrain"])), "--out", str(out),
            "--config", cfg.sft.cli_json(), "--resume-latest", "--data", *cfg.sft_data])
    if name in ("eval", "eval_sft"):
        from evals.harness import run_eval

        model_dir = store.local_dir(ids[STAGES[name].parents[0]])
        return lambda out: run_eval(model_dir, out, cfg.eval)
    raise UserError(f"unknown stage '{name}'")


def _ingest(inputs: list[str], out: Path, cfg: PipelineConfig, progress: ProgressFn | None) -> dict[str, Any]:
    """The sharded ingest, stopped right here when no input held a document (random bytes named .warc.gz, a JSONL
    whose every line is broken): the error names the damage, instead of a later stage failing on no data."""
    from flows.damage import no_documents_message
    from flows.sharded import run_sharded

    stats = run_sharded("ingest", inputs, out, cfg.ingest, cfg.execution, progress)
    if not stats.get("docs_out"):
        raise UserError(no_documents_message(stats, len(inputs)))
    return stats


def mix_with_report(inputs: list[str], out: Path, cfg: PipelineConfig, store: ArtifactStore,
                     ids: dict[str, str]) -> dict[str, Any]:
    """The mix stage plus its corpus report in ``out/report/`` (``curation.report``), fed the upstream stats."""
    import time

    from curation import report
    from curation.stages import run_mix_with_lengths

    stats, lengths = run_mix_with_lengths(inputs, out, cfg.mix)
    start = time.perf_counter()
    ancestors = sorted(store.ancestors(ids[STAGES["mix"].parents[0]]),
                       key=lambda m: ORDER.index(m.kind) if m.kind in ORDER else -1)  # crawl first
    upstream = [(m.kind, m.id, m.stats) for m in ancestors]
    thresholds = {lang: cfg.mix.min_quality_lang.get(lang, cfg.mix.min_quality) for lang in stats.get("by_lang", {})}
    stats["report"] = report.write_report(out, inputs, stats, upstream, thresholds,
                                          cfg.mix.model_dump(mode="json"), lengths=lengths)
    stats["report"]["seconds"] = round(time.perf_counter() - start, 3)
    return stats


def precheck(flow: str, cfg: PipelineConfig, store: ArtifactStore, known: dict[str, str]) -> None:
    """Check the mix config before any stage runs: source names against the raw inputs, and (when the
    ``quality`` artifact it will read already exists) weights and thresholds against its documents."""
    if "mix" not in stages_after(flow, known) or (crawl_enabled(cfg) and "ingest" not in known):
        return  # crawled WARCs exist only after the crawl: then mix checks itself before reading documents
    from curation.mix import check_input, check_sources
    from curation.documents import resolve_inputs

    ids = dict(known)
    sources = ([os.path.basename(i["path"]) for i in store.get(ids["ingest"]).inputs] if "ingest" in ids
               else [os.path.basename(p) for p in cfg.inputs])
    try:
        check_sources(cfg.mix, sources)
        for name in FLOWS["corpus"][:-1]:
            ids.setdefault(name, planned_id(name, cfg, ids))
        parent = ids[STAGES["mix"].parents[0]]
        if store.exists(parent):
            check_input(resolve_inputs([store.local_dir(parent)]), cfg.mix)
    except ValueError as e:
        raise UserError(str(e)) from None


def run_stage(name: str, cfg: PipelineConfig, store: ArtifactStore, ids: dict[str, str], refresh: bool,
              flow_run_id: str | None = None, progress: ProgressFn | None = None) -> tuple[Manifest, bool]:
    """Compute (or find) one stage's artifact. Returns ``(manifest, built)``.

    Sharded stages (``flows.sharded``) resume: shards completed by an interrupted build of the same id are
    reused; pretrain and sft resume from the last complete checkpoint their trainer left in the build directory
    (``--resume-latest``). ``progress`` receives the executor's progress snapshots (``flows.executor``)."""
    from flows.provenance import stage_code
    from flows.sharded import SHARDED

    conf, parents, raw = stage_identity(name, cfg, ids)
    return store.build(name, _stage(name).version, conf, parents, _compute(name, cfg, store, ids, progress),
                       inputs=raw, refresh=refresh, flow_run_id=flow_run_id,
                       resumable=name in (*SHARDED, "pretrain", "sft"),  # training resumes from its checkpoint
                       code=stage_code(name))


# Stages that run beside the ones after them (in a thread whose work is in a pool process) when there is more
# than one worker: quality_model needs only ingest, and is one process for ~7 s (5,000 negatives) that would
# otherwise leave the other cores idle between the sharded stages.
BESIDE = ("quality_model",)


def runs_beside(name: str, cfg: PipelineConfig) -> bool:
    return name in BESIDE and cfg.execution.executor == "local" and cfg.execution.resolved_workers > 1


def waits_for(name: str, pending: dict[str, Any]) -> list[str]:
    """The stages running beside that stage ``name`` needs first."""
    return [p for p in _stage(name).parents if p in pending]


def run_flow_plain(flow: str, cfg: PipelineConfig, store: ArtifactStore, refresh: list[str] | None,
                   from_artifact: str | None) -> dict[str, Any]:
    """Run a flow's stages in order with plain function calls (the ``--no-prefect`` path).

    Returns ``{stage: {"id", "built", "seconds"}}`` like the Prefect flows.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from flows.executor import warm_pool
    from flows.sharded import SHARDED

    if any(n in SHARDED for n in FLOWS[flow]):
        warm_pool(cfg.execution)  # the pool starts while the inputs are hashed and the stages planned
    store.clean_tmp()
    known = known_from(store, from_artifact)
    check_refresh_from(refresh, known)
    precheck(flow, cfg, store, known)
    force = expand_refresh(refresh)
    ids = dict(known)
    results: dict[str, Any] = {k: {"id": v, "built": False, "seconds": 0.0, "given": True} for k, v in known.items()}
    pending: dict[str, Future] = {}

    def finish(name: str) -> None:
        m, built = pending.pop(name).result()
        ids[name] = m.id
        results[name] = {"id": m.id, "built": built, "seconds": m.seconds}

    names = with_crawl(stages_after(flow, known), cfg)
    early = [n for n in names if runs_beside(n, cfg)]
    with ThreadPoolExecutor(max_workers=len(BESIDE)) as beside:
        try:
            for name in names:
                for b in [b for b in early if all(p in ids for p in _stage(b).parents)]:
                    early.remove(b)  # started as soon as its parents exist, ahead of its place in the order
                    pending[b] = beside.submit(run_stage, b, cfg, store, dict(ids), b in force)
                if name in pending or name in results:
                    continue
                for p in waits_for(name, pending):
                    finish(p)
                m, built = run_stage(name, cfg, store, ids, name in force)
                ids[name] = m.id
                results[name] = {"id": m.id, "built": built, "seconds": m.seconds}
            for p in list(pending):
                finish(p)
        finally:
            for f in pending.values():  # a failed stage: let the one beside it end before raising
                f.exception()
    return results
