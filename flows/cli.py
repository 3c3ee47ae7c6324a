"""The ``lmpipe`` command line.

    lmpipe run [FLOW] [--preset demo] [--set KEY=VALUE]… [--input PATH]… [--refresh STAGE]… [--from ID]
               [--no-prefect] [--home DIR]          run a flow: pipeline (default), corpus, tokenizer, pretrain, sft
    lmpipe run corpus --incremental [--input DIR]…  process only new input files into a new corpus version
    lmpipe ablate [--variant NAME=KEY=VALUE[,...]]… [--seeds K] [--preset ablate] [--set K=V]… [--no-prefect]
                                                    one proxy model per variant and seed, evaluated and compared
    lmpipe artifacts [--kind KIND]                  list complete artifacts
    lmpipe show ID                                  print an artifact's manifest
    lmpipe lineage ID                               the tree back to the raw input files, with stats
    lmpipe status [--kind KIND]                     which artifacts were built by other code than the installed
    lmpipe verify ID                                check an artifact's files against its manifest (sizes, SHA-256)
    lmpipe generate ID [--prompt TEXT]              sample from a pretrain or SFT model artifact
    lmpipe chat ID [--system TEXT]                  interactive multi-turn chat with an SFT (or pretrain) model
    lmpipe export ID --out DIR                      write a pretrain/SFT model in Hugging Face Llama format
    lmpipe config [--preset P] [--set K=V]…         print the resolved config
    lmpipe crawl --seeds FILE --out DIR [...]       crawl seed URLs politely into WARC files (curation/crawl.py)
    lmpipe ui [--port 4200]                         start the Prefect UI on the runs (SQLite, 127.0.0.1)
    lmpipe serve [--cron EXPR] [--full] [FLOW options]  register a scheduled (incremental) corpus refresh, serve it

Every user mistake (missing input, unknown stage, unknown config key, unknown artifact id) ends in a one-line
``lmpipe: error: …`` naming the fix, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STAGE_NAMES = ["crawl", "ingest", "langid", "filter", "dedup", "quality_model", "quality", "mix", "tokenizer",
               "tokens", "pretrain", "eval", "sft", "eval_sft"]  # crawl: only with crawl.seeds/seeds_file
FLOW_NAMES = ["pipeline", "corpus", "tokenizer", "pretrain", "sft"]
DEFAULT_PROMPTS = ["什么是机器学习？", "Give three tips for staying healthy."]


def _setup_env(home: str | None) -> None:
    """Deployment facts go in the environment, before Prefect is imported.

    Without ``PREFECT_API_URL`` Prefect starts its ephemeral SQLite server; we keep its database beside the
    artifacts (``$LMPIPE_HOME/prefect``) so ``lmpipe ui`` later shows the same runs.
    """
    if home:
        os.environ["LMPIPE_HOME"] = home
    lm_home = os.environ.setdefault("LMPIPE_HOME", os.path.abspath("lmpipe-data"))
    if "PREFECT_HOME" not in os.environ and "PREFECT_API_URL" not in os.environ and "://" not in lm_home:
        os.environ["PREFECT_HOME"] = str(Path(lm_home).resolve() / "prefect")
    # The analytics service makes SQLite report "database is locked" under the ephemeral server.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _parse_sets(items: list[str]) -> dict[str, str]:
    from flows.config import UserError

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise UserError(f"--set expects KEY=VALUE, got '{it}'; e.g. --set pretrain.steps=50")
        k, v = it.split("=", 1)
        out[k.strip()] = v
    return out


# CLI flag -> `execution.*` config key (flows/executor.py, ExecutionConfig).
EXECUTION_FLAGS = {"workers": "workers", "executor": "executor", "ray_address": "ray_address",
                   "slurm_partition": "slurm_partition", "slurm_time": "slurm_time",
                   "slurm_cpus_per_task": "slurm_cpus_per_task"}


# CLI flag -> `pretrain.*` config key: a multi-node pretraining run (model/launch.py).
PRETRAIN_FLAGS = {"nnodes": "nnodes", "node_rank": "node_rank", "rdzv_endpoint": "rdzv_endpoint"}


def _overrides(a: argparse.Namespace) -> dict[str, Any]:
    """``--set`` values plus the execution and multi-node flags (``--workers 4`` = ``--set execution.workers=4``,
    ``--nnodes 2`` = ``--set pretrain.nnodes=2``)."""
    out = _parse_sets(a.set)
    for prefix, flags in (("execution", EXECUTION_FLAGS), ("pretrain", PRETRAIN_FLAGS)):
        for flag, key in flags.items():
            value = getattr(a, flag, None)
            if value is not None:
                out[f"{prefix}.{key}"] = value
    return out


def cmd_run(a: argparse.Namespace) -> int:
    from flows import dag, refresh
    from flows.config import resolve_config
    from storage.lineage import lineage_lines
    from storage.store import ArtifactStore

    overrides = _overrides(a)
    files = refresh.incremental_inputs(a.flow, a.from_id, a.input) if a.incremental else a.input
    cfg = resolve_config(a.preset, overrides, files or None)  # all user errors surface before any work
    dag.expand_refresh(a.refresh)
    store = ArtifactStore()
    known = dag.known_from(store, a.from_id)
    dag.check_refresh_from(a.refresh, known)
    dag.stages_after(a.flow, known)
    if dag.STALE in a.refresh:  # `--refresh stale`: the stages whose artifact other code built, by name
        stale = dag.stale_stages(a.flow, cfg, store, known)
        for name, changed in stale.items():
            print(f"stale: {name} ({'; '.join(changed[:3])})")
        a.refresh = [r for r in a.refresh if r != dag.STALE] + list(stale)
        if not stale:
            print("no stale artifacts: every planned stage was built by the code installed now")
    if not a.incremental:  # (an incremental mix covers earlier versions' sources too: checked by mix itself)
        dag.precheck(a.flow, cfg, store, known)  # mix weights/thresholds against inputs and cached scores

    if os.environ.get("PREFECT_API_URL") and not a.no_prefect:  # server mode: one line for a down server or
        from flows.deploy import check_server                   # wrong credentials, not a 401 traceback

        check_server()
    t0 = time.time()
    # Embedded mode, nothing to refresh: when every stage's manifest is already complete, starting Prefect's
    # ephemeral server (8-17 s measured) would only record a run that does nothing. Server mode records it.
    planned = {} if (a.no_prefect or a.incremental or a.refresh or os.environ.get("PREFECT_API_URL")) \
        else dag.plan_ids(a.flow, cfg, known)
    note = ""
    if planned and all(store.exists(i) for i in planned.values()):
        results = {k: {"id": v, "built": False, "seconds": 0.0, "given": True} for k, v in known.items()}
        results.update({k: {"id": v, "built": False, "seconds": 0.0} for k, v in planned.items()})
        note = (f"all {len(planned)} stage(s) already complete (manifests in the store): no Prefect run created; "
                "use --refresh STAGE to recompute, or set PREFECT_API_URL to record runs on a Prefect server")
    elif a.incremental and a.no_prefect:
        results = refresh.run_plain(cfg, store, list(cfg.inputs) if files is None else files, a.refresh)
    elif a.no_prefect:
        results = dag.run_flow_plain(a.flow, cfg, store, a.refresh, a.from_id)
    else:
        from flows.prefect_flows import FLOW_FUNCS

        extra = {"incremental": True} if a.incremental else {}  # the flow re-lists input directories itself
        results = FLOW_FUNCS[a.flow](preset=a.preset, overrides=overrides or None, inputs=a.input or None,
                                     refresh=a.refresh or None, from_artifact=a.from_id, home=store.url, **extra)
    wall = time.time() - t0
    summary = results.pop("refresh", None)

    print(f"\n{'stage':<13} {'status':<8} {'artifact':<26} seconds")
    for name in STAGE_NAMES:
        r = results.get(name)
        if r:
            status = "given" if r.get("given") else ("built" if r["built"] else "skipped")
            print(f"{name:<13} {status:<8} {r['id']:<26} {r['seconds'] if r['built'] else 0:.1f}")
    built = sum(1 for r in results.values() if r.get("built"))
    print(f"{built} stage(s) built, {len(results) - built} skipped or given; wall time {wall:.1f} s "
          f"(artifacts in {store.url})")
    if note:
        print(note)
    if summary:
        print(refresh.describe(summary))

    last = next((results[s]["id"] for s in reversed(STAGE_NAMES) if s in results and not s.startswith("eval")),
                None)
    for s in ("eval", "eval_sft"):
        if s in results and store.exists(results[s]["id"]):
            report = store.local_dir(results[s]["id"]) / "eval.md"
            print(f"\nEval of the {'SFT' if s == 'eval_sft' else 'pretrained'} model ({report}):")
            print(report.read_text(encoding="utf-8").split("\n\n![")[0])
    if last and last.split("-")[0] in ("sft", "pretrain") and not a.no_generate:
        from model.generate import generate

        chat = last.startswith("sft-")
        print("\nSample generations from", last)
        for p in DEFAULT_PROMPTS:
            out = generate(store.local_dir(last), p, max_new_tokens=48, seed=0, chat=chat)
            print(f"  > {p}\n    {out.strip()!s}")
    if last:
        print("\nLineage of", last)
        print("\n".join(lineage_lines(store, last)))
    mix_id = (results.get("mix") or {}).get("id")
    if mix_id and store.exists(mix_id) and (store.local_dir(mix_id) / "report" / "report.md").exists():
        print(f"\nCorpus report: {store.local_dir(mix_id) / 'report' / 'report.md'}")
    if last:  # last, so that it is the line a user sees: damaged inputs lose documents without failing the run
        from flows.damage import damaged_inputs, warning_line

        line = warning_line(damaged_inputs(store, last))
        if line:
            print(f"\n{line}", file=sys.stderr)
    return 0


def cmd_ablate(a: argparse.Namespace) -> int:
    """Train one proxy model per variant and seed (same tokenizer, same token budget), evaluate, compare."""
    from flows import ablate
    from storage.store import ArtifactStore

    overrides = _overrides(a)
    spec = ablate.make_spec(a.preset, a.variant, a.seeds, overrides, a.input or None)  # every mistake, up front
    store = ArtifactStore()
    ablate.precheck(spec, store)
    if os.environ.get("PREFECT_API_URL") and not a.no_prefect:
        from flows.deploy import check_server

        check_server()
    t0 = time.time()
    # As `lmpipe run`: when every artifact is already in the store, the ephemeral Prefect server (8-17 s) would
    # only record a run that does nothing; server mode (PREFECT_API_URL) records it.
    done = not (a.no_prefect or os.environ.get("PREFECT_API_URL")) and all(
        store.exists(i) for i in ablate.planned_ids(spec))
    if a.no_prefect or done:
        out = ablate.run_ablation(spec, ablate.PlainStages(spec, store), store)
    else:
        from flows.prefect_flows import ablate_flow

        out = ablate_flow(preset=a.preset, variants=a.variant, seeds=a.seeds, overrides=overrides or None,
                          inputs=a.input or None, home=store.url)
    wall = time.time() - t0
    print(f"\n{'variant':<12} {'seed':<5} {'stage':<13} {'status':<8} artifact")
    for r in out["runs"]:
        seed = "" if r["seed"] is None else str(r["seed"])
        print(f"{r['variant']:<12} {seed:<5} {r['stage']:<13} {'built' if r['built'] else 'skipped':<8} {r['id']}")
    built = sum(r["built"] for r in out["runs"])
    models = sum(r["built"] for r in out["runs"] if r["stage"] == "pretrain")
    print(f"{built} stage(s) built ({models} model(s) trained), {len(out['runs']) - built} skipped; "
          f"wall time {wall:.1f} s (artifacts in {store.url})\n")
    md = (Path(out["dir"]) / "ablation.md").read_text(encoding="utf-8")
    print(md.split("\n![")[0])
    if done:
        print("every artifact already complete (manifests in the store): no Prefect run created")
    print(f"Comparison: {out['ablation']} ({Path(out['dir']) / 'ablation.md'}, plot ablation.png)")
    return 0


def cmd_artifacts(a: argparse.Namespace) -> int:
    from storage.lineage import summarize_stats
    from storage.store import ArtifactStore

    store = ArtifactStore()
    ms = store.list(a.kind)
    if not ms:
        print(f"no artifacts in {store.url}; run `lmpipe run` first")
        return 0
    print(f"{'id':<26} {'created (UTC)':<26} {'seconds':>8}  stats")
    for m in ms:
        print(f"{m.id:<26} {m.created_at:<26} {m.seconds:>8.1f}  {summarize_stats(m.stats)}")
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    from storage.store import ArtifactStore

    store = ArtifactStore()
    m = store.get(a.id)
    print(json.dumps({**m.to_dict(), "path": m.path}, indent=2, ensure_ascii=False))
    if m.kind in ("eval", "eval_sft") and (store.local_dir(m.id) / "eval.md").exists():
        print((store.local_dir(m.id) / "eval.md").read_text(encoding="utf-8"))
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    """Every artifact (of ``--kind``) and whether the code installed now is the code that built it."""
    from flows.provenance import changes
    from storage.store import ArtifactStore

    store = ArtifactStore()
    stale = 0
    for m in store.list(a.kind):
        changed = changes(m.code, m.kind)
        stale += bool(changed)
        state = "stale: " + "; ".join(changed[:4]) if changed else "current"
        print(f"{m.id:<28} {m.created_at:<26} {state}")
    print(f"{stale} artifact(s) built by other code than the installed; `lmpipe run FLOW --refresh stale` "
          "rebuilds the flow's stale stages" if stale else "every artifact was built by the code installed now")
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    """Check an artifact's files against its manifest; exit code 1 when something differs."""
    from storage.store import ArtifactStore

    store = ArtifactStore()
    problems = store.verify(a.id)
    for p in problems:
        print(f"{a.id}: {p}")
    kind = a.id.rsplit("-", 1)[0]
    print(f"{a.id}: {len(problems)} problem(s); rebuild with `lmpipe run ... --refresh {kind}`" if problems
          else f"{a.id}: {len(store.get(a.id).files)} file(s) match the manifest (sizes and SHA-256)")
    return 1 if problems else 0


def cmd_lineage(a: argparse.Namespace) -> int:
    from storage.lineage import lineage_lines
    from storage.store import ArtifactStore

    print("\n".join(lineage_lines(ArtifactStore(), a.id)))
    return 0


def _model_artifact(artifact_id: str) -> tuple[Any, Any]:
    """(store, manifest) of a pretrain or SFT artifact; a one-line UserError for any other kind."""
    from flows.config import UserError
    from storage.store import ArtifactStore

    store = ArtifactStore()
    m = store.get(artifact_id)
    if m.kind not in ("pretrain", "sft"):
        raise UserError(f"{artifact_id} is a '{m.kind}' artifact; pass a pretrain or sft artifact id "
                        "(see `lmpipe artifacts --kind sft`)")
    return store, m


def cmd_generate(a: argparse.Namespace) -> int:
    from model.generate import generate

    store, m = _model_artifact(a.id)
    for p in a.prompt or DEFAULT_PROMPTS:
        print(generate(store.local_dir(a.id), p, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                       seed=a.seed, chat=m.kind == "sft"))
    return 0


def cmd_chat(a: argparse.Namespace) -> int:
    """Read turns from stdin until /exit or EOF; the model stays loaded, the history is in every prompt."""
    from model.generate import Generator, chat_loop

    store, m = _model_artifact(a.id)
    gen = Generator(store.local_dir(a.id))
    chat = m.kind == "sft"
    if sys.stdin.isatty():
        mode = "chat" if chat else "text continuation (a pretrain model: no chat template, no history)"
        print(f"{a.id}: {mode}; /reset clears the history, /exit or Ctrl-D ends", flush=True)
    chat_loop(gen, sys.stdin, sys.stdout, chat=chat, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
              seed=a.seed, system=a.system)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from model.export import export_hf

    store, m = _model_artifact(a.id)
    out = export_hf(store.local_dir(a.id), a.out)
    print(f"wrote {out} (load with transformers: AutoModelForCausalLM.from_pretrained({str(out)!r}))")
    return 0


def cmd_crawl(a: argparse.Namespace) -> int:
    """Crawl the seeds into ``--out`` (WARC + crawl-log.jsonl) and print the outcome counts."""
    from pydantic import ValidationError

    from curation.crawl import CrawlConfig, load_seeds, run_crawl
    from flows.config import UserError, parse_value

    seeds = load_seeds(a.seeds)  # FileNotFoundError / ValueError: one-line errors
    values: dict[str, Any] = {k.removeprefix("crawl."): parse_value(v) for k, v in _parse_sets(a.set).items()}
    flags = {"max_pages": a.max_pages, "max_depth": a.depth, "user_agent": a.user_agent,
             "same_site": a.same_site or None, "allow_private": a.allow_private or None}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = CrawlConfig.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"invalid crawl setting '{loc}': {err['msg']}; valid keys: "
                        + ", ".join(CrawlConfig.model_fields)) from None
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a directory (it is created if missing)")
    stats = run_crawl(seeds, out, cfg)
    print(f"{stats['written']} page(s) written from {stats['seeds']} seed(s), {stats['pages_requested']} requested, "
          f"{stats['requests']} HTTP requests ({stats['retries']} retries), {stats['seconds']:.1f} s")
    for reason, n in stats["dropped"].items():
        print(f"  dropped {reason:<20} {n}")
    print("robots.txt: " + (", ".join(f"{k} {v}" for k, v in stats["robots"].items()) or "none fetched"))
    for name in stats["warc_files"]:
        print(f"wrote {out / name}")
    if not stats["warc_files"]:
        print("no WARC file written: no page was kept (see the drop reasons above)")
    print(f"log: {out / 'crawl-log.jsonl'}")
    return 0


def cmd_config(a: argparse.Namespace) -> int:
    from flows.config import resolve_config

    cfg = resolve_config(a.preset, _overrides(a), a.input or None)
    print(json.dumps(cfg.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def cmd_ui(a: argparse.Namespace) -> int:
    from flows.ui import serve

    print(f"Prefect UI: http://127.0.0.1:{a.port}  "
          f"(database: {os.environ.get('PREFECT_HOME', '~/.prefect')}; Ctrl-C stops it)")
    print(f"Runs made by `lmpipe run` with the same LMPIPE_HOME appear there; to record runs on this server, "
          f"export PREFECT_API_URL=http://127.0.0.1:{a.port}/api", flush=True)
    return serve(a.port)


def cmd_serve(a: argparse.Namespace) -> int:
    """Register a deployment of a flow with a cron schedule and serve it (blocks; Ctrl-C stops).

    Schedules need a running Prefect server (`lmpipe ui` or server mode): Prefect's ephemeral server never runs
    its scheduler, so we refuse to serve without PREFECT_API_URL.
    """
    from flows.config import UserError, resolve_config

    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("schedules need a running Prefect server: start `lmpipe ui` in another terminal, then "
                        "export PREFECT_API_URL=http://127.0.0.1:4200/api and run `lmpipe serve` again")
    from flows import refresh

    overrides = _overrides(a)
    incremental = a.flow == "corpus" and not a.full  # the scheduled corpus refresh processes new files only
    resolve_config(a.preset, overrides, (refresh.expand_inputs(a.input) if incremental else a.input) or None)
    from flows.deploy import check_server

    check_server()
    from flows.prefect_flows import FLOW_FUNCS

    fl = FLOW_FUNCS[a.flow] if a.flow in FLOW_FUNCS else None
    if fl is None:
        raise UserError(f"unknown flow '{a.flow}'; flows are: {', '.join(FLOW_NAMES)}")
    params = {"preset": a.preset, "overrides": overrides or None,
              "inputs": [os.path.abspath(p) for p in a.input] or None,
              "home": os.environ["LMPIPE_HOME"], **({"incremental": True} if incremental else {})}
    print(f"serving '{a.flow}' as deployment '{a.name}' on cron '{a.cron}' (one run at a time); Ctrl-C stops",
          flush=True)
    # global_limit=1: one refresh at a time, a late one waits instead of racing the previous one.
    fl.serve(name=a.name, cron=a.cron, parameters=params, global_limit=1, pause_on_shutdown=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmpipe", description="Web data → corpus → tokenizer → LLM, as one Prefect DAG.")
    p.add_argument("--home", help="artifact store root (default $LMPIPE_HOME or ./lmpipe-data); fsspec URLs allowed")
    sub = p.add_subparsers(dest="cmd", required=True)

    def config_args(sp: argparse.ArgumentParser, preset: str = "demo") -> None:
        sp.add_argument("--preset", default=preset, help=f"config preset: demo, tiny or ablate (default {preset})")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set pretrain.steps=50 (repeatable)")
        sp.add_argument("--input", action="append", default=[], metavar="PATH",
                        help="raw input file (WARC/WET/JSONL/Parquet) replacing the preset's (repeatable)")
        ex = sp.add_argument_group("execution (how curation stages run; never part of an artifact id)")
        ex.add_argument("--workers", type=int, metavar="N", help="shards run at once (default: all cores)")
        ex.add_argument("--executor", choices=["local", "ray", "slurm"], help="local processes (default), a Ray "
                        "cluster (`ray start`; --ray-address) or Slurm job arrays (sbatch)")
        ex.add_argument("--ray-address", metavar="ADDR", help="Ray cluster address (default $RAY_ADDRESS, else auto)")
        ex.add_argument("--slurm-partition", metavar="NAME", help="Slurm partition (default: the cluster's)")
        ex.add_argument("--slurm-time", metavar="T", help="Slurm time limit per job (default 4:00:00)")
        ex.add_argument("--slurm-cpus-per-task", type=int, metavar="N", help="CPUs per Slurm task (default 1)")
        mn = sp.add_argument_group("pretrain on several nodes (this is node 0; the command for the others is "
                                   "logged, scripts/pretrain.sbatch does it under Slurm)")
        mn.add_argument("--nnodes", type=int, metavar="N", help="nodes (= --set pretrain.nnodes=N; default 1)")
        mn.add_argument("--node-rank", type=int, metavar="K", help="this node's rank: 0 for the DAG's node")
        mn.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="node 0's address and a free port there")

    r = sub.add_parser("run", help="run a flow (default: the whole pipeline)")
    r.add_argument("flow", nargs="?", default="pipeline", help=f"one of: {', '.join(FLOW_NAMES)}")
    config_args(r)
    r.add_argument("--refresh", action="append", default=[], metavar="STAGE",
                   help=f"recompute STAGE and everything downstream; stages: {', '.join(STAGE_NAMES)}, all, "
                        "stale (the stages whose artifact other code built: see `lmpipe status`)")
    r.add_argument("--from", dest="from_id", metavar="ID", help="start downstream of this artifact")
    r.add_argument("--no-prefect", action="store_true", help="run the same DAG as plain function calls")
    r.add_argument("--incremental", action="store_true",
                   help="corpus only: process just the input files (a directory: its files) that no earlier "
                        "corpus version covers and make a new version (see flows/refresh.py)")
    r.add_argument("--no-generate", action="store_true", help="skip the sample generation at the end")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("ablate", help="compare data variants: one proxy model per variant and seed, evaluated")
    s.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE...]",
                   help="a variant: the config plus these keys (repeatable; the first is the baseline; default: "
                        "all=mix.top_fraction=1 and top50=mix.top_fraction=0.5)")
    s.add_argument("--seeds", type=int, default=2, metavar="K", help="models per variant, pretrain.seed = base "
                   "seed + 0..K-1 (default 2)")
    config_args(s, preset="ablate")
    s.add_argument("--no-prefect", action="store_true", help="run the same steps as plain function calls")
    s.set_defaults(func=cmd_ablate)

    s = sub.add_parser("artifacts", help="list complete artifacts")
    s.add_argument("--kind", help="only this kind (stage name)")
    s.set_defaults(func=cmd_artifacts)
    s = sub.add_parser("show", help="print an artifact's manifest")
    s.add_argument("id")
    s.set_defaults(func=cmd_show)
    s = sub.add_parser("lineage", help="print the lineage tree back to the raw inputs")
    s.add_argument("id")
    s.set_defaults(func=cmd_lineage)
    s = sub.add_parser("status", help="list artifacts and whether the installed code built them (stale or current)")
    s.add_argument("--kind", help="only this kind (stage name)")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("verify", help="check an artifact's files against its manifest (sizes and SHA-256)")
    s.add_argument("id")
    s.set_defaults(func=cmd_verify)
    s = sub.add_parser("generate", help="sample text from a pretrain/sft artifact")
    s.add_argument("id")
    s.add_argument("--prompt", action="append")
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_generate)
    s = sub.add_parser("chat", help="interactive chat with an sft (or pretrain) artifact; /exit or EOF ends")
    s.add_argument("id")
    s.add_argument("--system", help="system message at the start of the conversation")
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_chat)
    s = sub.add_parser("export", help="write a pretrain/sft model in Hugging Face Llama format")
    s.add_argument("id")
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("crawl", help="crawl seed URLs into WARC files (robots.txt obeyed, polite per host)")
    s.add_argument("--seeds", required=True, metavar="FILE", help="text file of seed URLs, one per line")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory (WARC files, crawl-log.jsonl)")
    s.add_argument("--max-pages", type=int, metavar="N", help="page budget (default 100)")
    s.add_argument("--depth", type=int, metavar="N", help="maximum link depth from the seeds (default 2)")
    s.add_argument("--same-site", action="store_true", help="follow only links on the seeds' sites")
    s.add_argument("--allow-private", action="store_true", help="allow private and loopback addresses")
    s.add_argument("--user-agent", help="User-Agent header (its first token is matched in robots.txt)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any crawl setting, e.g. --set per_host_delay=2 (see `lmpipe config`, section crawl)")
    s.set_defaults(func=cmd_crawl)
    s = sub.add_parser("config", help="print the resolved config")
    config_args(s)
    s.set_defaults(func=cmd_config)
    s = sub.add_parser("serve", help="register a scheduled refresh (cron) and serve it; needs a running server")
    s.add_argument("flow", nargs="?", default="corpus", help=f"one of: {', '.join(FLOW_NAMES)} (default corpus)")
    s.add_argument("--cron", default="0 3 * * *", help="cron schedule (default: daily at 03:00)")
    s.add_argument("--name", default="scheduled-refresh", help="deployment name")
    s.add_argument("--full", action="store_true", help="corpus: every run recomputes from all inputs instead of "
                   "the default incremental refresh (new input files only, a new corpus version)")
    config_args(s)
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("ui", help="start the Prefect UI (127.0.0.1)")
    s.add_argument("--port", type=int, default=4200)
    s.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    _setup_env(a.home)
    from flows.config import UserError
    from storage.store import ArtifactDamaged, ArtifactNotFound

    try:
        return a.func(a)
    except (UserError, ArtifactNotFound, ArtifactDamaged, FileNotFoundError, PermissionError) as e:
        msg = str(e.args[0]) if isinstance(e, ArtifactNotFound) and e.args else str(e)
        print(f"lmpipe: error: {msg}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad data or values found while a stage ran (e.g. a vocabulary too small)
        if os.environ.get("LMPIPE_DEBUG"):
            raise
        print(f"lmpipe: error: {str(e).splitlines()[0] if str(e) else type(e).__name__} "
              "(set LMPIPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmpipe: interrupted; finished stages are kept, the interrupted one is redone next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
