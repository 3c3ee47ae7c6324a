"""curation.dedup: shingles, MinHash, banding, precision/recall on shared/data/near_dup, bad input, and the
persistent index (a second batch deduplicated against the first), also through `run_dedup`."""

from __future__ import annotations

import itertools
import json
import random
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.config import DedupConfig
from curation.dedup import (
    _NON_WORD,
    MinHasher,
    band_keys,
    batch_shingle_hashes,
    bands_rows_for_recall,
    jaccard,
    lsh_probability,
    near_duplicate_clusters,
    normalize,
    optimal_bands_rows,
    shingle_hashes,
    shingles,
)
from curation.documents import read_documents, write_documents
from curation.stages import run_dedup

SHARED = Path(__file__).resolve().parents[2] / "shared"
NEAR_DUP = SHARED / "data" / "near_dup"
TANG = NEAR_DUP / "tang_poems_two_editions"
LICENSES = NEAR_DUP / "choosealicense_license_texts"
POEM = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"
EN = ("the quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat near the door of "
      "the old house and the birds sing in the tall trees beside the quiet river every single morning")


def test_normalize_and_shingles() -> None:
    assert normalize("Ｈｅｌｌｏ,   World!\n") == "hello world"
    assert normalize("a_b — c+d") == "ab cd"  # punctuation and symbols dropped (pair lists: [\s\W_])
    assert shingles(normalize(POEM), char_ngram=5) >= {"床前明月光", "疑是地上霜"}
    assert shingles("one two three", word_ngram=5) == {"one two three"}
    assert shingles("") == set()
    # Hashes: one per distinct shingle, sorted, deterministic, and word hashing ignores spacing.
    h = shingle_hashes(normalize(EN), word_ngram=5)
    assert h.dtype == np.uint32 and len(h) == len(shingles(normalize(EN), word_ngram=5)) and (np.diff(h) > 0).all()
    assert (h == shingle_hashes(normalize("  " + EN.replace(" ", "   ")), word_ngram=5)).all()
    assert len(shingle_hashes(normalize(POEM), char_ngram=3)) == len(shingles(normalize(POEM), char_ngram=3))


def _normalize_by_regex(text: str) -> str:
    """The definition `normalize` implements with a code point table and str.translate."""
    text = _NON_WORD.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = _NON_WORD.sub("", unicodedata.normalize("NFKC", text))
    return " ".join(text.lower().split())


def test_normalize_equals_its_regex_definition() -> None:
    rng = random.Random(0)
    planes = [range(0x110000), range(0x3000), range(128), [32, 9, 10, 0x85, 0xA0, 0x1C, 0x2028, 0x3000, 0x130]]
    texts = ["İSTANBUL ΟΔΟΣ ΑΣ", "ﬁ ㍿ ½ Ⅻ ＂，。", "a\u0301 e\u0308", "\x1c\x1fa b", "x\ud800y",
             "Tab\tand\nnew-line!", ""]
    texts += ["".join(chr(rng.choice(plane)) for _ in range(rng.choice([1, 3, 40])))
              for plane in planes for _ in range(300)]
    assert [normalize(t) for t in texts] == [_normalize_by_regex(t) for t in texts]


def test_shingle_hashes_and_band_keys_are_stable() -> None:
    """Persistent indexes hold these values: a faster implementation must give the same numbers."""
    long_word = "Ünïcödé wörds — and " + "x" * 300 + " then, five more words here"
    batch = batch_shingle_hashes([normalize(t) for t in (EN, POEM, "Tiny!", long_word)])
    assert [len(h) for h in batch] == [35, 16, 1, 5]
    assert [int(h.astype(np.uint64).sum()) for h in batch] == [74060596892, 35991676633, 612747103, 9575249703]
    keys = band_keys(MinHasher(128, 1).signatures(batch), 21, 6)
    assert keys[:, 0].tolist() == [1681660896, 110194592, 1753707362, 3319439519]


def test_bands_rows_s_curve() -> None:
    assert bands_rows_for_recall(0.8, 128) == (21, 6)
    assert lsh_probability(0.8, 21, 6) >= 0.99 and lsh_probability(0.5, 21, 6) < 0.3
    assert bands_rows_for_recall(0.5, 128) == (42, 3)
    assert optimal_bands_rows(0.8, 128) == (9, 13) and lsh_probability(0.8, 9, 13) < 0.41  # datasketch's rule


def test_minhash_estimates_jaccard() -> None:
    """The share of equal signature values estimates the Jaccard similarity (checks the 32-bit permutations)."""
    rng = np.random.default_rng(0)
    hasher = MinHasher(128, seed=1)
    errors = []
    for j in (0.2, 0.5, 0.8, 0.95):
        for _ in range(20):
            universe = np.unique(rng.integers(0, 1 << 32, size=4000, dtype=np.uint64).astype(np.uint32))[:600]
            common = int(round(2 * j * 300 / (1 + j)))  # |A| = |B| = 300, |A & B| = common
            a = np.sort(universe[:300])
            b = np.sort(np.concatenate([universe[:common], universe[300 : 600 - common]]))
            sa, sb = hasher.signatures([a, b])
            errors.append(float((sa == sb).mean()) - jaccard(a, b))
    assert abs(np.mean(errors)) < 0.02 and np.std(errors) < 0.06, (np.mean(errors), np.std(errors))


def _pair_scores(clusters: dict[str, str], truth: set[frozenset[str]]) -> tuple[float, float]:
    members: dict[str, list[str]] = defaultdict(list)
    for doc, cluster in clusters.items():
        members[cluster].append(doc)
    predicted = {frozenset(p) for group in members.values() for p in itertools.combinations(group, 2)}
    hits = len(predicted & truth)
    return hits / len(predicted), hits / len(truth)


def _truth(path: Path, threshold: float) -> set[frozenset[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {frozenset(line.split("\t")[:2]) for line in lines if float(line.split("\t")[2]) >= threshold}


@pytest.mark.parametrize("threshold", [0.8, 0.5])
def test_tang_poems_precision_recall(threshold: float) -> None:
    if not TANG.is_dir():
        pytest.skip(f"{TANG} is absent (shared test data)")
    docs = [json.loads(line) for line in (TANG / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    # Shingles as in the pair list (char 3-grams without whitespace and punctuation, SOURCES.md).
    clusters = near_duplicate_clusters(((d["id"], d["text"]) for d in docs), threshold=threshold, char_ngram=3)
    assert set(clusters) == {d["id"] for d in docs}
    precision, recall = _pair_scores(clusters, _truth(TANG / "pairs_char3gram_jaccard_ge0.3.tsv", threshold))
    # Measured: P 0.987 R 1.000 at 0.8; P 0.989 R 1.000 at 0.5 (lost precision: chains A~B~C with J(A,C) < t).
    assert precision >= 0.98 and recall >= 0.98, (precision, recall)
    # The kept document of a cluster is the longest text, then the smallest id.
    length = {d["id"]: len(d["text"]) for d in docs}
    members: dict[str, list[str]] = defaultdict(list)
    for doc, cluster in clusters.items():
        members[cluster].append(doc)
    for cluster, group in members.items():
        assert cluster == min(group, key=lambda i: (-length[i], i))


def test_licence_texts_word_shingles() -> None:
    if not LICENSES.is_dir():
        pytest.skip(f"{LICENSES} is absent (shared test data)")
    docs = [json.loads(line) for line in (LICENSES / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    clusters = near_duplicate_clusters(((d["id"], d["text"]) for d in docs), threshold=0.8, word_ngram=5)
    assert _pair_scores(clusters, _truth(LICENSES / "pairs_word5gram_jaccard_ge0.05.tsv", 0.8)) == (1.0, 1.0)


def test_bad_input() -> None:
    docs = [
        ("empty1", ""), ("empty2", ""), ("blank", "  \n\t "), ("punct", "!!! ..."),  # no shingles at all
        ("short1", "hello world"), ("short2", "Hello, world!"), ("short3", "goodbye world"),  # < 1 shingle
        ("long", EN), ("near", EN.replace("morning", "evening")),
    ]
    clusters = near_duplicate_clusters(docs, threshold=0.8)
    # A text without shingles is nobody's near-duplicate (empty texts would otherwise all collide).
    assert all(clusters[i] == i for i in ["empty1", "empty2", "blank", "punct"])
    # A text shorter than one shingle is one shingle: equal after normalisation -> J = 1, else J = 0.
    assert clusters["short1"] == clusters["short2"] == "short2" and clusters["short3"] == "short3"
    assert clusters["near"] == clusters["long"] == "long"  # same length: smallest id wins
    with pytest.raises(ValueError, match="duplicate document id"):
        near_duplicate_clusters([("a", "one text"), ("a", "another text")])


def _poems() -> list[tuple[str, str]]:
    """Ten distinct short 'poems' (random CJK characters) for the index tests."""
    rng = np.random.default_rng(3)
    return [(f"p{i}", "".join(chr(0x4E00 + int(c)) for c in rng.integers(0, 20000, size=40))) for i in range(10)]


def _variant(text: str) -> str:
    return text[:-1] + "鄉"  # the last of 40 characters changed: char 3-gram Jaccard 37/39 = 0.95


def test_index_second_batch_against_first(tmp_path: Path) -> None:
    index = tmp_path / "index"
    first = _poems()
    c1 = near_duplicate_clusters(first + [("p0-copy", first[0][1])], char_ngram=3, index_dir=index)
    assert c1["p0-copy"] == "p0" and len(list(index.glob("seg-*"))) == 1
    fresh = "全新的一首詩完全不同的內容在這裡出現了"
    second = [("n0", _variant(first[3][1])), ("n1", fresh + "吧"), ("n2", _variant(first[3][1]) + "。")]
    c2 = near_duplicate_clusters(second, char_ngram=3, index_dir=index)
    # Both new copies of p3 map to the earlier document p3 (earlier batches always win); n1 is new.
    assert c2 == {"n0": "p3", "n1": "n1", "n2": "p3"}
    assert len(list(index.glob("seg-*"))) == 2
    # Re-running the same batch (a retried task) neither matches itself nor adds a segment.
    assert near_duplicate_clusters(second, char_ngram=3, index_dir=index) == c2
    assert len(list(index.glob("seg-*"))) == 2
    # A third batch sees the second batch's kept document n1.
    assert near_duplicate_clusters([("m", fresh)], char_ngram=3, index_dir=index) == {"m": "n1"}
    # The index's hashing parameters are fixed at creation.
    with pytest.raises(ValueError, match="was built with"):
        near_duplicate_clusters(second, char_ngram=5, index_dir=index)


def _rows(docs: list[tuple[str, str]]) -> list[dict]:
    return [{"id": i, "text": t, "url": f"http://x/{i}", "source": "t", "lang": "zh"} for i, t in docs]


def test_run_dedup_with_index_and_duplicate_ids(tmp_path: Path) -> None:
    cfg = DedupConfig(char_ngram=3, index_dir=str(tmp_path / "index"))
    first = _poems()
    write_documents(_rows(first), tmp_path / "b1.parquet")
    stats1 = run_dedup([tmp_path / "b1.parquet"], tmp_path / "out1", cfg)
    assert stats1["docs_out"] == 10 and stats1["duplicates_of_index"] == 0

    second = [("n0", _variant(first[3][1])), ("n1", first[5][1]),
              ("n2", "另一首全新的詩句與前面的都不一樣的呢"),
              ("n2", "同一個編號但是文字完全不同的文件呀"), ("e1", ""), ("e2", "")]
    write_documents(_rows(second), tmp_path / "b2.parquet")
    stats2 = run_dedup([tmp_path / "b2.parquet"], tmp_path / "out2", cfg)
    kept = {r["id"] for r in read_documents([tmp_path / "out2"])}
    removed = pq.read_table(tmp_path / "out2" / "removed" / "removed-00000.parquet").to_pylist()
    reasons = {(r["id"], r["text"][:3]): (r["drop_reason"], r["duplicate_of"]) for r in removed}
    # New duplicates record which earlier document they matched.
    assert reasons[("n0", second[0][1][:3])] == ("near_duplicate", "p3")
    assert reasons[("n1", second[1][1][:3])] == ("near_duplicate", "p5")
    # Same id, different text: the first occurrence wins.
    assert reasons[("n2", "同一個")] == ("duplicate_id", "n2")
    # Empty documents are exact duplicates of each other (one kept: the smallest id).
    assert reasons[("e2", "")] == ("exact_duplicate", "e1")
    assert kept == {"n2", "e1"}
    assert stats2["duplicates_of_index"] == 2

    # A page seen again unchanged (same id and text as an indexed document, e.g. a re-crawl) is dropped,
    # not kept because its cluster's survivor carries its own id.
    write_documents(_rows([first[7], ("n3", "第三批裡唯一的一首新的詩句在這裡")]), tmp_path / "b3.parquet")
    stats3 = run_dedup([tmp_path / "b3.parquet"], tmp_path / "out3", cfg)
    assert {r["id"] for r in read_documents([tmp_path / "out3"])} == {"n3"}
    removed3 = pq.read_table(tmp_path / "out3" / "removed" / "removed-00000.parquet").to_pylist()
    assert [(r["id"], r["drop_reason"], r["duplicate_of"]) for r in removed3] == [("p7", "near_duplicate", "p7")]
    assert stats3["duplicates_of_index"] == 1


def test_workers_give_the_same_clusters() -> None:
    docs = _poems() + [(f"v{i}", _variant(t)) for i, (_, t) in enumerate(_poems())] + [("en", EN), ("en2", EN + " x")]
    assert near_duplicate_clusters(docs, char_ngram=3, workers=2) == near_duplicate_clusters(docs, char_ngram=3)


def test_signatures_match_reference_including_long_documents() -> None:
    """Batched signatures equal min_x (a_i * x + b_i) mod 2^32, also for documents longer than one block."""
    rng = np.random.default_rng(1)
    hasher = MinHasher(128, seed=1)
    sizes = [5, 20_000, 3, 9_000, 8_192, 8_193, 1, 7]
    sets = [np.unique(rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)) for n in sizes]
    a, b = hasher.a.astype(np.uint64), hasher.b.astype(np.uint64)
    reference = np.stack([((s[:, None].astype(np.uint64) * a + b) % (1 << 32)).min(axis=0) for s in sets])
    assert (hasher.signatures(sets) == reference.astype(np.uint32)).all()


@pytest.mark.parametrize("cuts", [(5,), (3, 9, 20)])
def test_run_dedup_output_does_not_depend_on_the_shards(tmp_path: Path, cuts: tuple[int, ...]) -> None:
    """The same documents split into shards (signatures per shard, one decision pass, writing per shard) give,
    shard outputs concatenated, exactly the rows of a single shard: duplicates across shards included."""
    docs = _poems() + [(f"v{i}", _variant(t)) for i, (_, t) in enumerate(_poems())]
    docs += [("x0", _poems()[0][1]), ("en", EN), ("en2", EN + " x"), ("e1", ""), ("e2", ""), ("x0", "other")]
    rows = _rows(docs)
    write_documents(rows, tmp_path / "in.parquet")
    bounds = [0, *cuts, len(rows)]
    shards = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        shards.append(tmp_path / f"in-{i}.parquet")
        write_documents(rows[lo:hi], shards[-1])
    cfg = DedupConfig(char_ngram=3)

    def run(inputs: list[Path], out: str) -> tuple[dict, list[dict], list[dict]]:
        stats = run_dedup(inputs, tmp_path / out, cfg)
        stats.pop("seconds")
        kept = list(read_documents(sorted((tmp_path / out).glob("docs-*.parquet"))))
        removed = list(read_documents(sorted((tmp_path / out / "removed").glob("*.parquet"))))
        return stats, kept, removed

    one = run([tmp_path / "in.parquet"], "one")
    assert one[0]["dropped"]["exact_duplicate"] and one[0]["dropped"]["near_duplicate"]
    assert one[0]["dropped"]["duplicate_id"] == 1
    assert run(shards, "sharded") == one
    assert len(list((tmp_path / "sharded").glob("docs-*.parquet"))) == len(shards)
