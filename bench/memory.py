"""Peak RSS of the mix + corpus report step and of quality_model's negatives, at 1x and 16x the input.

What it measures. The target: the peak RSS of a process at 16x the input is at most 1.2x its peak at 1x.
For each step and each size, one fresh subprocess runs the step and reports its own peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`), so imports and allocator state never carry over between rows:

* `mix+report`: `curation.mix.mix` (MixConfig defaults plus `rehydrate {1: 1, 2: 2}`: one duplicated
  document in ten gets a second copy) and `curation.report.write_report` on the quality-shaped shards;
* its peer `mix+report (in-memory)`: the same two calls of the previous implementation (whole table with its
  text column in memory, rows looped in Python, the report reading the text column again), loaded from
  `curation/mix.py` and `curation/report.py` at commit `PREVIOUS` with `git show`; when git or that commit
  is not there, the row is `pyarrow.parquet.read_table` of the same shards instead (a lower bound of any
  in-memory step);
* `quality_model`: `curation.quality.sample_negatives` (5,000 pieces, streamed) then `curation.quality.train`
  on the shipped reference positives (`llamafactory_wiki_demo.txt`, as the README's quality_model example);
* its peer `quality_model (all texts)`: the previous stage's way, every ingested text in a list, then `train`.

Inputs (built once into `--cache`, deterministic): the 4,000 CC-like pages of bench/scale.py's 1x set
(4 WARC files, real pages and synthetic pages made of real paragraphs; built by bench/scale.py into its cache
when absent) go through the real `ingest`, `langid` and `quality` stages (shipped model), one shard per WARC:
the ingest shards are quality_model's input, the quality shards the mix's. A `dup_cluster_size` column is
added (dedup is not run: 1 for nine documents in ten, else 2, from the id hash). 16x = the 1x shards copied
16 times (64 shards), each copy's ids and urls suffixed with its copy number, the texts unchanged.

    .venv/bin/python bench/memory.py     # ~10 min on 2 busy cores (+2 min to build the inputs, cached)
    .venv/bin/python bench/memory.py --sizes 1,4,16 --json /tmp/memory.json
    .venv/bin/python bench/memory.py --steps mix,mix-previous   # the mix rows only (~1.5 min)

Needs ../shared/data (skipped with a message, exit 0, when absent).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
POSITIVES = SHARED / "text" / "en" / "llamafactory_wiki_demo.txt"
PREVIOUS = "66b1380"  # the last commit with the in-memory mix and report
BUILD_VERSION = 1
REHYDRATE = {1: 1.0, 2: 2.0}


# ---------------------------------------------------------------------------------------------- inputs


def _scale_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def build_base(cache: Path, scale_cache: Path) -> Path:
    """`cache/base-v1/{ingest,quality}/docs-0000r.parquet` from the 1x pages of bench/scale.py (built once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xxhash

    from curation.config import IngestConfig, LangIdConfig, QualityConfig
    from curation.stages import run_ingest, run_langid, run_quality

    base = cache / f"base-v{BUILD_VERSION}"
    if (base / "done").exists():
        return base
    scale = _scale_module()
    warcs, _ = scale.build_inputs(lambda: scale.analyse(scale.real_pages(SHARED)), 4000, 0, scale_cache)
    shutil.rmtree(base, ignore_errors=True)
    for rank, warc in enumerate(sorted(warcs.glob("*.warc.gz"))):
        run_ingest([warc], base / "ingest", IngestConfig(), shard=rank)
        run_langid([base / "ingest" / f"docs-{rank:05d}.parquet"], base / "langid", LangIdConfig(), shard=rank)
        run_quality([base / "langid" / f"docs-{rank:05d}.parquet"], base / "scored", QualityConfig(), shard=rank)
        table = pq.read_table(base / "scored" / f"docs-{rank:05d}.parquet")
        sizes = [1 if xxhash.xxh64_intdigest(d) % 10 else 2 for d in table.column("id").to_pylist()]
        table = table.append_column("dup_cluster_size", pa.array(sizes, pa.int64()))
        (base / "quality").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, base / "quality" / f"docs-{rank:05d}.parquet", row_group_size=5000, compression="zstd")
    shutil.rmtree(base / "langid")
    shutil.rmtree(base / "scored")
    (base / "done").write_text("ok")
    return base


def replicate(base: Path, kind: str, times: int, cache: Path) -> Path:
    """`times` copies of base/kind's shards (ids and urls suffixed `~k`), written batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if times == 1:
        return base / kind
    out = cache / f"{kind}-x{times}-v{BUILD_VERSION}"
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shards = sorted((base / kind).glob("docs-*.parquet"))
    for copy in range(times):
        for rank, shard in enumerate(shards):
            parquet = pq.ParquetFile(shard)
            with pq.ParquetWriter(out / f"docs-{copy * len(shards) + rank:05d}.parquet", parquet.schema_arrow,
                                  compression="zstd") as writer:
                for batch in parquet.iter_batches(batch_size=1000):
                    table = pa.Table.from_batches([batch])
                    for name in ("id", "url"):
                        col = pc.binary_join_element_wise(table.column(name).fill_null(""), f"~{copy}", "")
                        table = table.set_column(table.schema.get_field_index(name), name, col)
                    writer.write_table(table)
    (out / "done").write_text("ok")
    return out


# ------------------------------------------------------------------------------------------- children


def _previous(name: str, work: Path) -> Any | None:
    """curation/<name>.py as of commit PREVIOUS, as a module (None when git or the commit is missing)."""
    try:
        source = subprocess.run(["git", "show", f"{PREVIOUS}:curation/{name}.py"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = work / f"previous_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"previous_{name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def child(step: str, inputs: Path, work: Path) -> dict[str, Any]:
    """Run one step in this process; return what it did."""
    from curation.config import MixConfig
    from curation.documents import resolve_inputs

    files = resolve_inputs([inputs])
    out = work / "out"
    if step in ("mix", "mix-previous"):
        cfg = MixConfig(rehydrate=REHYDRATE)
        if step == "mix":
            from curation import report
        else:
            mix_module, report = _previous("mix", work), _previous("report", work)
            if mix_module is None or report is None:  # no git history: the plain read is the peer
                return {**child("read_table", inputs, work), "peer": "read_table"}
            mix = mix_module.mix
        if step == "mix":  # the pipeline's way: the mix hands its per-row lengths to the report
            from curation.mix import mix_with_lengths
            stats, lengths = mix_with_lengths(files, out, cfg)
            report.write_report(out, files, stats, [], {}, lengths=lengths)
        else:
            stats = mix(files, out, cfg)
            report.write_report(out, files, stats, [], {})
        return {"rows": stats["rows_out"], "docs_in": stats["docs_in"], "peer": PREVIOUS if step != "mix" else "-"}
    if step == "read_table":
        import pyarrow.parquet as pq
        tables = [pq.read_table(f) for f in files]
        return {"rows": sum(t.num_rows for t in tables)}
    from curation import quality
    from curation.documents import read_documents

    positives = quality.read_texts(POSITIVES)
    params = quality.TrainParams(max_reference_docs=5000)
    if step == "quality_model":
        negatives = quality.sample_negatives(files, 5000, 0, {POSITIVES.name})
    else:
        negatives = [row["text"] for row in read_documents(files)
                     if row["text"] and row.get("source") != POSITIVES.name]
    model = quality.train(positives, negatives, None, None, params)
    return {"negatives": len(negatives), "fitted_on": model.info.get("fitted_on")}


def measure(step: str, inputs: Path, cache: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=cache, prefix=".run-") as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", step, "--input", str(inputs), "--work", tmp],
                              capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"{step} on {inputs} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["seconds"] = round(time.perf_counter() - start, 1)
        return result


# ---------------------------------------------------------------------------------------------- main

STEPS = (("mix+report", "mix", "quality"), ("mix+report (in-memory, previous)", "mix-previous", "quality"),
         ("read_table of the shards", "read_table", "quality"),
         ("quality_model (streamed negatives)", "quality_model", "ingest"),
         ("quality_model (all texts, previous)", "quality_model-previous", "ingest"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,16", help="input sizes in units of the 1x set (the first is the base)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lmpipe-memory")
    ap.add_argument("--scale-cache", type=Path, default=Path(tempfile.gettempdir()) / "lmpipe-scale")
    ap.add_argument("--steps", default=",".join(step for _, step, _ in STEPS),
                    help="which rows to run (comma-separated): " + ", ".join(step for _, step, _ in STEPS))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        result = child(a.child, a.input, a.work)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return 0
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent (the inputs are built from it)")
        return 0
    a.cache.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    base = build_base(a.cache, a.scale_cache)
    rows = []
    for label, step, kind in [s for s in STEPS if s[1] in a.steps.split(",")]:
        peaks = {}
        for size in sizes:
            inputs = replicate(base, kind, size, a.cache)
            result = measure(step, inputs, a.cache)
            peaks[size] = result
            print(f"  {label} {size}x: {result}", file=sys.stderr)
        rows.append({"step": label, **{f"{s}x": peaks[s] for s in sizes}})
    print(f"\nbench/memory.py, {date.today()}, {platform.node()} ({platform.processor() or platform.machine()}), "
          f"peak RSS per process (MB), inputs: {sizes[0]}x = 4 shards of bench/scale.py's 4,000 pages\n")
    head = " | ".join(f"{s}x MB" for s in sizes)
    print(f"| step | {head} | {sizes[-1]}x / {sizes[0]}x | {sizes[-1]}x s |")
    print("|---|" + "---:|" * (len(sizes) + 2))
    for row in rows:
        first, last = row[f"{sizes[0]}x"], row[f"{sizes[-1]}x"]
        cells = " | ".join(f"{row[f'{s}x']['peak_rss_mb']:,.0f}" for s in sizes)
        print(f"| {row['step']} | {cells} | {last['peak_rss_mb'] / first['peak_rss_mb']:.2f} | {last['seconds']} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
