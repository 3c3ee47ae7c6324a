"""Near-duplicate detection: quality, throughput and memory of `curation.dedup` vs datasketch and datatrove.

    .venv/bin/python bench/dedup.py                     # quality + throughput (20k docs) + RSS at 1M docs
    .venv/bin/python bench/dedup.py --docs 200000 --throughput-docs 5000    # quicker
    .venv/bin/python bench/dedup.py --scale 100000 1000000      # sharded stage vs datatrove's 4-step MinHash
    git worktree add /tmp/lmpipe-old <rev> && .venv/bin/python bench/dedup.py --scale 100000 --baseline /tmp/lmpipe-old
        # ... and an earlier version of our stage on the same documents (the same kept ids are checked)
    .venv/bin/python bench/dedup.py --scale 10000000 --skip-datatrove --refresh-index 0   # the 10M run: ~27 GB
        # temp (2.7 KB a document measured at 400k) beside the input and output Parquet; ~1.5 CPU-hours for ours

1. Quality: on ../shared/data/near_dup (Tang poems in two editions; licence texts), pairwise precision and
   recall of the predicted clusters (every pair inside a cluster is a predicted pair) against the exact-Jaccard
   pair lists at J >= 0.8 and J >= 0.5. All three tools get the same shingle sets (`curation.dedup.shingles`
   with the n-gram size the pair list was computed with: char 2/3-grams, word 3/5-grams), so only hashing,
   banding and verification differ. datasketch: MinHash(128) + MinHashLSH(threshold=J) with its default
   weights (its bands/rows optimum). datatrove: its MinHash signature step at its defaults (14 buckets x 8
   hashes, 64-bit xxhash) and its rule that documents sharing a bucket are duplicates (no verification).
2. Throughput, one process (= one core; the machine's cores are shared, so only the ratio to datasketch,
   measured in the same run on the same documents, is meaningful): signatures only, and end to end
   (shingles -> signatures -> LSH -> clusters).
3. Incremental: build a persistent index of --index-docs / 4 and --index-docs synthetic documents, then
   dedup the next 20,000 documents of the same stream against it; compare with the same batch alone.
4. Memory: peak RSS (VmHWM) of a child process running `near_duplicate_clusters` over a synthetic
   corpus of --docs documents streamed from a generator (the corpus is never held in memory), minus the
   RSS of the same child with 0 documents (imports), extrapolated per million documents.
5. Scale (--scale N ...): web-page-length synthetic documents (`web_corpus`): English paragraphs (lines of
   >= 40 characters) of the texts in ../shared/data/text/en (Dolma CC, C4, Wikipedia, WikiText, Shakespeare),
   concatenated at random and cut at a length drawn log-normally (median 2,500 characters, sigma 0.8, clipped
   to 300-30,000: mean ~3,400, the table prints the measured mean), written as Parquet shards of <= 125,000
   documents (at least 8: memory per process follows the shard size, as in the DAG); 5% are planted
   near-copies of an earlier document with 0-12% of their words replaced, whose exact word-5-gram Jaccard to
   the original is computed and recorded.
   Ours: `curation.stages.run_dedup` (signatures per shard, the bounded-memory decision ranks, writing) in a
   child process; datatrove 0.10.1: MinhashDedupSignature -> Buckets -> Cluster -> Filter at its defaults
   (14 x 8, 5-grams), each step's ranks run in one child process (its word tokenizer replaced by str.split,
   its hash given bytes: its xxhash wrapper fails on str with xxhash 4.1). Reported per tool: docs per CPU
   second (user + system of the child), peak RSS of the child (VmHWM), temp disk at its largest, and recall of
   the planted pairs with J >= 0.8 (a pair is found when at most one of the two is kept). `--baseline DIR` (a
   checkout of an earlier version) adds that version's stage as a third row and checks it kept the same ids.
6. Refresh cost (--scale too): 20,000 new web documents deduplicated against an index of 100,000 real ones
   (the stream goes on, so its planted copies hit the index), then against the same index plus a segment of
   stand-in documents up to --refresh-index (random band keys: what lookups cost in an index that size,
   without signing millions of texts first); whole refresh, and the index lookups alone.

Synthetic corpus (`synthetic_corpus`), built from the real texts with a seeded RNG: 70% Chinese documents of
1-8 random Tang poems, 20% English documents of 2-6 random paragraphs of the licence texts, 10% near-copies
of one of the previous 1000 documents (1-3 characters replaced, or one line dropped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation import dedup  # noqa: E402

NEAR_DUP = REPO.parent / "shared" / "data" / "near_dup"
TANG = NEAR_DUP / "tang_poems_two_editions"
LICENSES = NEAR_DUP / "choosealicense_license_texts"
Clusterer = Callable[[list[tuple[str, str]], float, int, int], dict[str, str]]


# ---------------------------------------------------------------- the three tools, same interface
def ours(docs: list[tuple[str, str]], threshold: float, word_n: int, char_n: int) -> dict[str, str]:
    return dedup.near_duplicate_clusters(docs, threshold=threshold, word_ngram=word_n, char_ngram=char_n)


def _union(ids: list[str], edges: Iterator[tuple[str, str]]) -> dict[str, str]:
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {i: find(i) for i in ids}


def _shingle_list(text: str, word_n: int, char_n: int) -> list[bytes]:
    return [s.encode("utf-8") for s in dedup.shingles(dedup.normalize(text), word_n, char_n)]


def datasketch_signatures(docs: list[tuple[str, str]], word_n: int, char_n: int) -> list:
    from datasketch import MinHash

    sigs = []
    for _, text in docs:
        m = MinHash(num_perm=128)
        m.update_batch(_shingle_list(text, word_n, char_n))
        sigs.append(m)
    return sigs


def datasketch(docs: list[tuple[str, str]], threshold: float, word_n: int, char_n: int) -> dict[str, str]:
    from datasketch import MinHashLSH

    sigs = datasketch_signatures(docs, word_n, char_n)
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    for (doc_id, _), m in zip(docs, sigs):
        lsh.insert(doc_id, m)
    edges = ((doc_id, other) for (doc_id, _), m in zip(docs, sigs) for other in lsh.query(m))
    return _union([d for d, _ in docs], edges)


def _datatrove_step():
    import tempfile

    import datatrove.pipeline.dedup.minhash as minhash

    minhash.load_word_tokenizer = lambda language: None  # we pass shingles ourselves (it would need spacy)
    return minhash.MinhashDedupSignature(tempfile.mkdtemp(prefix="datatrove-"))


def datatrove_signatures(docs: list[tuple[str, str]], word_n: int, char_n: int) -> list[list[list[int]]]:
    step = _datatrove_step()
    out = []
    for _, text in docs:
        shingles = dedup.shingles(dedup.normalize(text), word_n, char_n) or {""}
        hashes = np.fromiter((step._hash_func(s) for s in shingles), dtype=np.uint64).reshape((-1, 1))
        out.append(step.get_signature(hashes))
    return out


def datatrove(docs: list[tuple[str, str]], threshold: float, word_n: int, char_n: int) -> dict[str, str]:
    sigs = datatrove_signatures(docs, word_n, char_n)
    first: dict[tuple[int, tuple[int, ...]], str] = {}
    edges = []
    for (doc_id, _), buckets in zip(docs, sigs):
        for b, sig in enumerate(buckets):
            other = first.setdefault((b, tuple(sig)), doc_id)
            if other != doc_id:
                edges.append((doc_id, other))
    return _union([d for d, _ in docs], iter(edges))


TOOLS: dict[str, Clusterer] = {"lmpipe": ours, "datasketch": datasketch, "datatrove": datatrove}


# ---------------------------------------------------------------- quality
def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load_pairs(path: Path) -> dict[frozenset[str], float]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        a, b, j = line.split("\t")
        pairs[frozenset((a, b))] = float(j)
    return pairs


def pair_scores(clusters: dict[str, str], truth: set[frozenset[str]]) -> tuple[float, float]:
    members: dict[str, list[str]] = defaultdict(list)
    for doc, cluster in clusters.items():
        members[cluster].append(doc)
    predicted = {frozenset(p) for group in members.values() for p in itertools.combinations(group, 2)}
    hits = len(predicted & truth)
    return (hits / len(predicted) if predicted else 1.0), (hits / len(truth) if truth else 1.0)


def quality() -> list[str]:
    sets = [
        ("tang char3", TANG / "docs.jsonl", TANG / "pairs_char3gram_jaccard_ge0.3.tsv", 5, 3),
        ("tang char2", TANG / "docs.jsonl", TANG / "pairs_char2gram_jaccard_ge0.3.tsv", 5, 2),
        ("licences word5", LICENSES / "docs.jsonl", LICENSES / "pairs_word5gram_jaccard_ge0.05.tsv", 5, 5),
        ("licences word3", LICENSES / "docs.jsonl", LICENSES / "pairs_word3gram_jaccard_ge0.05.tsv", 3, 5),
    ]
    lines = ["| data | J >= | tool | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for name, docs_path, pairs_path, word_n, char_n in sets:
        docs = [(d["id"], d["text"]) for d in load_jsonl(docs_path)]
        truth_j = load_pairs(pairs_path)
        for threshold in (0.8, 0.5):
            truth = {p for p, j in truth_j.items() if j >= threshold}
            for tool, fn in TOOLS.items():
                p, r = pair_scores(fn(docs, threshold, word_n, char_n), truth)
                f1 = 2 * p * r / (p + r) if p + r else 0.0
                lines.append(f"| {name} ({len(truth)} pairs) | {threshold} | {tool} | {p:.3f} | {r:.3f} | {f1:.3f} |")
    return lines


# ---------------------------------------------------------------- synthetic corpus, throughput, memory
def synthetic_corpus(n: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    """n (id, text) documents built from the Tang poems and licence texts (see the module docstring)."""
    rng = random.Random(seed)
    poems = [d["text"] for d in load_jsonl(TANG / "docs.jsonl")]
    paragraphs = [p for d in load_jsonl(LICENSES / "docs.jsonl") for p in d["text"].split("\n\n") if p.strip()]
    recent: list[str] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.1 and recent:
            text = rng.choice(recent)
            if rng.random() < 0.5 and "\n" in text:
                lines = text.split("\n")
                del lines[rng.randrange(len(lines))]
                text = "\n".join(lines)
            elif text:
                chars = list(text)
                for _ in range(rng.randint(1, 3)):
                    chars[rng.randrange(len(chars))] = rng.choice(text)
                text = "".join(chars)
        elif roll < 0.8:
            text = "\n".join(rng.choice(poems) for _ in range(rng.randint(1, 8)))
        else:
            text = "\n\n".join(rng.choice(paragraphs) for _ in range(rng.randint(2, 6)))
        recent.append(text)
        if len(recent) > 1000:
            recent.pop(0)
        yield f"syn{i:08d}", text


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def our_signatures(docs: list[tuple[str, str]]) -> None:
    hasher = dedup.MinHasher(128)
    for i in range(0, len(docs), 4096):
        batch = dedup.batch_shingle_hashes([dedup.normalize(t) for _, t in docs[i : i + 4096]])
        hasher.signatures([s for s in batch if len(s)])


def throughput(n: int) -> list[str]:
    docs = list(synthetic_corpus(n, seed=1))
    chars = sum(len(t) for _, t in docs) / len(docs)
    rows = [
        ("signatures", "lmpipe", timed(lambda: our_signatures(docs))),
        ("signatures", "datasketch", timed(lambda: datasketch_signatures(docs, 5, 5))),
        ("signatures", "datatrove", timed(lambda: datatrove_signatures(docs, 5, 5))),
        ("end to end", "lmpipe", timed(lambda: ours(docs, 0.8, 5, 5))),
        ("end to end", "datasketch", timed(lambda: datasketch(docs, 0.8, 5, 5))),
    ]
    base = {stage: secs for stage, tool, secs in rows if tool == "datasketch"}
    lines = [
        f"{n} synthetic docs, {chars:.0f} characters on average; one process",
        "",
        "| stage | tool | seconds | docs/s per core | vs datasketch |",
        "|---|---|---|---|---|",
    ]
    for stage, tool, secs in rows:
        lines.append(f"| {stage} | {tool} | {secs:.1f} | {n / secs:,.0f} | {base[stage] / secs:.2f}x |")
    return lines


def incremental(n_index: int, n_new: int = 20_000) -> list[str]:
    """Refresh cost: dedup n_new documents against indexes of n_index / 4 and n_index documents."""
    import tempfile

    lines = [
        "| indexed docs | new docs | build index s | refresh s | same batch, no index s | refresh / no index "
        "| new docs matched to indexed ones |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (n_index // 4, n_index):
        with tempfile.TemporaryDirectory() as tmp:
            build = timed(
                lambda size=size: dedup.near_duplicate_clusters(synthetic_corpus(size, seed=3), index_dir=tmp))
            # The stream goes on: its near-copies of recent documents hit the index.
            new = list(itertools.islice(synthetic_corpus(size + n_new, seed=3), size, None))
            t0 = time.perf_counter()
            clusters = dedup.near_duplicate_clusters(new, index_dir=tmp)
            refresh = time.perf_counter() - t0
            new_ids = {d for d, _ in new}
            matched = sum(1 for c in clusters.values() if c not in new_ids)
        alone = timed(lambda new=new: dedup.near_duplicate_clusters(new))
        lines.append(f"| {size:,} | {n_new:,} | {build:.1f} | {refresh:.1f} | {alone:.1f} "
                     f"| {refresh / alone:.2f} | {matched:,} |")
    return lines


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts from its
    parent's RSS at fork (measured: 274 MiB for a child that did nothing, after the throughput runs)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int) -> None:
    """Run in a child process: cluster n synthetic docs, print JSON with peak RSS and seconds."""
    t0 = time.perf_counter()
    clusters = dedup.near_duplicate_clusters(synthetic_corpus(n, seed=2)) if n else {}
    secs = time.perf_counter() - t0
    kept = sum(1 for k, v in clusters.items() if k == v)
    rss_mib = peak_rss_mib()
    print(json.dumps({"docs": n, "kept": kept, "seconds": secs, "peak_rss_mib": rss_mib}))


def memory(n: int) -> list[str]:
    def child(k: int) -> dict:
        cmd = [sys.executable, __file__, "--rss-child", str(k)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    base, run = child(0), child(n)
    extra = run["peak_rss_mib"] - base["peak_rss_mib"]
    return [
        "| docs | kept | seconds | peak RSS MiB | RSS with 0 docs MiB | (peak - 0 docs) per 1M docs MiB "
        "| peak per 1M docs MiB |",
        "|---|---|---|---|---|---|---|",
        f"| {n:,} | {run['kept']:,} | {run['seconds']:.0f} | {run['peak_rss_mib']:.0f} | {base['peak_rss_mib']:.0f} "
        f"| {extra / n * 1e6:.0f} | {run['peak_rss_mib'] / n * 1e6:.0f} |",
    ]


# ---------------------------------------------------------------- scale: sharded stage vs datatrove
TEXT_EN = REPO.parent / "shared" / "data" / "text" / "en"


def _paragraphs() -> list[str]:
    out = []
    for p in sorted(TEXT_EN.iterdir()):
        raw = p.read_text(encoding="utf-8", errors="replace")
        texts = ([json.loads(x).get("text", "") for x in raw.splitlines() if x.strip()]
                 if p.suffix == ".jsonl" else [raw])
        out += [line.strip() for t in texts for line in t.split("\n") if len(line.strip()) >= 40]
    return out


def web_corpus(n: int, seed: int = 0) -> Iterator[tuple[str, str, str | None]]:
    """(id, text, id of the original when this is a planted near-copy) for n web-page-length documents."""
    rng = random.Random(seed)
    paras = _paragraphs()
    recent: list[tuple[str, str]] = []
    for i in range(n):
        if recent and rng.random() < 0.05:
            orig_id, orig = rng.choice(recent)
            words = orig.split()
            for _ in range(int(len(words) * rng.uniform(0, 0.12))):
                words[rng.randrange(len(words))] = rng.choice(("lorem", "ipsum", "dolor", "amet"))
            yield f"w{i:09d}", " ".join(words), orig_id
            continue
        target = min(30_000, max(300, int(rng.lognormvariate(np.log(2500), 0.8))))
        parts, size = [], 0
        while size < target:
            parts.append(rng.choice(paras))
            size += len(parts[-1]) + 1
        text = "\n".join(parts)[:target]
        recent.append((f"w{i:09d}", text))
        if len(recent) > 2000:
            recent.pop(rng.randrange(len(recent)))
        yield f"w{i:09d}", text, None


def write_web_corpus(n: int, out: Path, shards: int = 8) -> tuple[list[Path], list[tuple[str, str, float]], float]:
    """Parquet shards of `web_corpus(n)`; returns (files, planted (original, copy, J), mean length)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"in-{s:05d}.parquet" for s in range(shards)]
    writers = [pq.ParquetWriter(f, pa.schema([("id", pa.string()), ("text", pa.string())])) for f in files]
    planted, texts, total, block = [], {}, 0, []
    for doc_id, text, orig in web_corpus(n):
        total += len(text)
        if orig is None:
            texts[doc_id] = text
            if len(texts) > 4000:
                texts.pop(next(iter(texts)))
        elif orig in texts:
            a = dedup.shingle_hashes(dedup.normalize(texts[orig]))
            b = dedup.shingle_hashes(dedup.normalize(text))
            planted.append((orig, doc_id, dedup.jaccard(a, b)))
        block.append((doc_id, text))
        if len(block) == 1024 * shards:
            for s, w in enumerate(writers):
                part = block[s::shards]
                w.write_table(pa.table({"id": [d for d, _ in part], "text": [t for _, t in part]}))
            block = []
    if block:
        for s, w in enumerate(writers):
            part = block[s::shards]
            w.write_table(pa.table({"id": [d for d, _ in part], "text": [t for _, t in part]}))
    for w in writers:
        w.close()
    return files, planted, total / max(n, 1)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def scale_child(tool: str, inputs: str, work: str) -> None:
    """In a child process: run one tool over the shards, print JSON (kept ids file, CPU s, peak RSS, temp disk)."""
    import threading

    files = sorted(Path(inputs).glob("in-*.parquet"))
    work_dir = Path(work)
    peak_disk = [0]
    stop = threading.Event()

    def watch() -> None:  # temp disk at its largest, sampled every second
        while not stop.wait(1.0):
            peak_disk[0] = max(peak_disk[0], _du(work_dir))

    threading.Thread(target=watch, daemon=True).start()
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    kept = _run_ours(files, work_dir) if tool == "lmpipe" else _run_datatrove(files, work_dir)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    peak_disk[0] = max(peak_disk[0], _du(work_dir))
    (work_dir / "kept.txt").write_text("\n".join(kept))
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib(),
                      "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, "temp_bytes": peak_disk[0]}))


def _run_ours(files: list[Path], work: Path) -> list[str]:
    import tempfile

    from curation.config import DedupConfig
    from curation.documents import read_documents
    from curation.stages import run_dedup

    tempfile.tempdir = str(work)  # run_dedup's signatures and runs go under `work` (measured as temp disk)
    out = work.parent / f"{work.name}-out"  # the deduplicated corpus: output, not temp
    run_dedup(files, out, DedupConfig())
    return [r["id"] for r in read_documents(sorted(out.glob("docs-*.parquet")))]


def _run_datatrove(files: list[Path], work: Path) -> list[str]:
    import pyarrow.parquet as pq
    import xxhash
    from datatrove.data import Document
    from datatrove.pipeline.dedup import minhash

    class Split:  # datatrove's default tokenizer needs spacy; whitespace words match our word shingles
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

    from loguru import logger

    logger.remove()  # its per-bucket INFO lines
    minhash.load_word_tokenizer = lambda language: Split()
    config = minhash.MinhashConfig()
    sig = minhash.MinhashDedupSignature(str(work / "sigs"), config=config)
    sig._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))

    def docs(f: Path) -> Iterator[Document]:
        for batch in pq.ParquetFile(f).iter_batches(4096):
            for d, t in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                yield Document(text=t, id=d)

    for rank, f in enumerate(files):
        for _ in sig.run(docs(f), rank=rank, world_size=len(files)) or ():
            pass
    buckets = minhash.MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)
    for b in range(config.num_buckets):
        buckets.run(rank=b, world_size=config.num_buckets)
    minhash.MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config).run()
    flt = minhash.MinhashDedupFilter(str(work / "remove"))
    kept = []
    for rank, f in enumerate(files):
        kept += [d.id for d in flt.run(docs(f), rank=rank, world_size=len(files))]
    return kept


def _filler_segment(index: "dedup.DedupIndex", n: int, seed: int = 9) -> None:
    """Add a segment of n stand-in documents (random band keys, one random shingle each, written band by band):
    what an index of n more documents costs a lookup, without signing n texts first."""
    import tempfile

    rng = np.random.default_rng(seed)
    bands = index.params["bands"]
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index.path))
    keys = np.lib.format.open_memmap(tmp / "keys.npy", "w+", np.uint32, (bands, n))
    docs = np.lib.format.open_memmap(tmp / "docs.npy", "w+", np.uint32, (bands, n))
    for b in range(bands):
        k = rng.integers(0, 1 << 32, size=n, dtype=np.uint32)
        order = np.argsort(k, kind="stable")
        keys[b], docs[b] = k[order], order
    keys.flush(), docs.flush()
    del keys, docs
    np.save(tmp / "ids.npy", np.char.add(b"fill", np.arange(n).astype("S9")))
    rng.integers(0, 1 << 32, size=n, dtype=np.uint32).tofile(tmp / "shingles.u32")
    np.save(tmp / "offsets.npy", np.arange(n + 1, dtype=np.int64))
    index.publish(tmp, f"filler{n}", n)


def refresh_cost(n_large: int, n_index: int = 100_000, n_new: int = 20_000) -> list[str]:
    """Refresh of n_new documents against an index of n_index real documents, then against the same index plus
    n_large - n_index stand-in documents (`_filler_segment`): whole refresh and the index lookups alone."""
    import tempfile

    lines = ["| indexed docs | new docs | refresh s | lookups s | refresh vs 100k | lookups vs 100k "
             "| new docs matched |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        stream = ((d, t) for d, t, _ in web_corpus(n_index + n_new, seed=5))
        dedup.near_duplicate_clusters(itertools.islice(stream, n_index), index_dir=tmp)
        new = list(itertools.islice(stream, n_new))
        index = dedup.DedupIndex(tmp, json.loads((Path(tmp) / "meta.json").read_text())["params"])
        hasher = dedup.MinHasher(index.params["num_perm"], index.params["seed"])
        store = dedup._ShingleStore(Path(tmp) / "new.u32")
        sets = dedup.batch_shingle_hashes([dedup.normalize(t) for _, t in new])
        store.extend(sets)
        store.freeze()
        valid = np.array([len(x) > 0 for x in sets])
        keys = np.zeros((len(new), index.params["bands"]), np.uint32)
        keys[valid] = dedup.band_keys(hasher.signatures([x for x in sets if len(x)]), index.params["bands"],
                                      index.params["rows"])
        base = None
        for size in (n_index, n_large):
            if size > n_index:
                _filler_segment(index, size - n_index)
            t0 = time.perf_counter()
            clusters = dedup.near_duplicate_clusters(new, index_dir=tmp, update_index=False)
            refresh = time.perf_counter() - t0
            t0 = time.perf_counter()
            dedup.match_index(index.open(), "none", keys, valid, store, 0.8)
            lookups = time.perf_counter() - t0
            matched = sum(1 for c in clusters.values() if c.startswith("w") and int(c[1:]) < n_index)
            base = base or (refresh, lookups)
            lines.append(f"| {size:,} | {n_new:,} | {refresh:.1f} | {lookups:.2f} | {refresh / base[0]:.2f}x "
                         f"| {lookups / base[1]:.2f}x | {matched:,} |")
        store.close()
    return lines


def scale(sizes: list[int], skip_datatrove: bool, baseline: Path | None = None) -> list[str]:
    import shutil
    import tempfile

    lines = ["| docs | mean chars | tool | seconds | docs per CPU s | peak RSS MiB | temp disk MiB "
             "| planted J>=0.8 | recall | vs datatrove (docs/CPU s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    scripts = {"lmpipe": Path(__file__)}  # the bench/dedup.py whose child runs each tool
    if baseline is not None:
        scripts["lmpipe (baseline)"] = baseline / "bench" / "dedup.py"
    if not skip_datatrove:
        scripts["datatrove"] = Path(__file__)
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix="dedup-scale-"))
        try:
            files, planted, mean = write_web_corpus(n, root / "in", shards=max(8, n // 125_000))
            truth = [(a, b) for a, b, j in planted if j >= 0.8]
            rows, kept_ids = {}, {}
            for tool, script in scripts.items():
                work = root / f"run-{len(rows)}"
                work.mkdir()
                child = "datatrove" if tool == "datatrove" else "lmpipe"
                cmd = [sys.executable, str(script), "--scale-child", child, str(root / "in"), str(work)]
                out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                kept = kept_ids[tool] = set((work / "kept.txt").read_text().split("\n"))
                r["recall"] = sum(1 for a, b in truth if not (a in kept and b in kept)) / max(len(truth), 1)
                rows[tool] = r
                shutil.rmtree(work)
                shutil.rmtree(root / f"{work.name}-out", ignore_errors=True)
            if baseline is not None and kept_ids["lmpipe"] != kept_ids["lmpipe (baseline)"]:
                notes.append(f"**kept ids differ from the baseline's at {n:,} documents**")
            elif baseline is not None:
                notes.append(f"{n:,} documents: the baseline kept the same ids.")
            for tool, r in rows.items():
                ratio = f"{rows['datatrove']['cpu'] / r['cpu']:.2f}x" if "datatrove" in rows else "—"
                lines.append(f"| {n:,} | {mean:,.0f} | {tool} | {r['seconds']:.0f} | {n / r['cpu']:,.0f} "
                             f"| {r['peak_rss_mib']:.0f} | {r['temp_bytes'] / 2**20:,.0f} | {len(truth):,} "
                             f"| {r['recall']:.4f} | {ratio} |")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return lines + ([""] + notes if notes else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000, help="synthetic corpus size for the RSS run")
    parser.add_argument("--throughput-docs", type=int, default=20_000)
    parser.add_argument("--index-docs", type=int, default=200_000, help="largest index for the refresh-cost run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["quality", "throughput", "incremental", "memory"])
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, nargs="*", default=None,
                        help="corpus sizes for the sharded stage vs datatrove run (only --scale parts run when given; "
                             "none: the refresh cost alone)")
    parser.add_argument("--refresh-index", type=int, default=10_000_000,
                        help="--scale: index size (100,000 real documents + stand-ins) for the second refresh; 0: skip")
    parser.add_argument("--skip-datatrove", action="store_true", help="--scale: our stage only")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="--scale: a checkout of an earlier version whose stage runs too (same documents)")
    parser.add_argument("--scale-child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    if args.scale_child is not None:
        scale_child(*args.scale_child)
        return
    if args.scale is not None:
        print(f"# bench/dedup.py --scale  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.node()}  "
              f"{os.cpu_count()} cores\n")
        for name, lines in [("scale", lambda: scale(args.scale, args.skip_datatrove, args.baseline)),
                            ("refresh cost", lambda: refresh_cost(args.refresh_index))]:
            if (name == "scale" and not args.scale) or (name == "refresh cost" and not args.refresh_index):
                continue
            t0 = time.perf_counter()
            out = lines()
            print(f"## {name} ({time.perf_counter() - t0:.0f} s)\n")
            print("\n".join(out), "\n", flush=True)
        return
    if not NEAR_DUP.is_dir():
        sys.exit(f"{NEAR_DUP} is absent")
    print(f"# bench/dedup.py  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.node()}  "
          f"{os.cpu_count()} cores  python {platform.python_version()}\n")
    bands, rows = dedup.bands_rows_for_recall(0.8, 128)
    print(f"lmpipe at J 0.8: {bands} bands x {rows} rows, P(candidate | J=0.8) = "
          f"{dedup.lsh_probability(0.8, bands, rows):.3f}, then exact-Jaccard verification\n")
    for name, fn, arg in [("quality", quality, None), ("throughput", throughput, args.throughput_docs),
                          ("incremental", incremental, args.index_docs), ("memory", memory, args.docs)]:
        if name in args.skip:
            continue
        t0 = time.perf_counter()
        lines = fn() if arg is None else fn(arg)
        print(f"## {name} ({time.perf_counter() - t0:.0f} s)\n")
        print("\n".join(lines), "\n", flush=True)


if __name__ == "__main__":
    main()
