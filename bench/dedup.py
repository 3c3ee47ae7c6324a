"""Near-duplicate detection: quality, throughput and memory of `curation.dedup` vs datasketch and datatrove.

    .venv/bin/python bench/dedup.py                     # quality + throughput (20k docs) + RSS at 1M docs
    .venv/bin/python bench/dedup.py --docs 200000 --throughput-docs 5000    # quicker

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
            build = timed(lambda: dedup.near_duplicate_clusters(synthetic_corpus(size, seed=3), index_dir=tmp))
            # The stream goes on: its near-copies of recent documents hit the index.
            new = list(itertools.islice(synthetic_corpus(size + n_new, seed=3), size, None))
            t0 = time.perf_counter()
            clusters = dedup.near_duplicate_clusters(new, index_dir=tmp)
            refresh = time.perf_counter() - t0
            new_ids = {d for d, _ in new}
            matched = sum(1 for c in clusters.values() if c not in new_ids)
        alone = timed(lambda: dedup.near_duplicate_clusters(new))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000, help="synthetic corpus size for the RSS run")
    parser.add_argument("--throughput-docs", type=int, default=20_000)
    parser.add_argument("--index-docs", type=int, default=200_000, help="largest index for the refresh-cost run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["quality", "throughput", "incremental", "memory"])
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
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
