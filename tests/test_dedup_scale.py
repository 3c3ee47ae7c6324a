"""The bounded-memory dedup decisions (`curation.dedup_sharded`) against the one-process `dedup_decide`:
the same decision files on every set of shared/data/near_dup (split into shards, several ranks per step),
and the bad inputs: empty shards, shards whose documents all go, ids repeated across shards, a truncated
run file (detected and signed again), a full disk (a clear error naming the directory)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation import dedup_sharded as ds
from curation.config import DedupConfig
from curation.documents import read_documents, write_documents
from curation.stages import dedup_decide, dedup_decide_sharded, dedup_signatures, run_dedup

NEAR_DUP = Path(__file__).resolve().parents[2] / "shared" / "data" / "near_dup"
needs_shared = pytest.mark.skipif(not NEAR_DUP.is_dir(), reason="../shared/data/near_dup is absent")


def _rows(docs: list[tuple[str, str]]) -> list[dict]:
    return [{"id": i, "text": t, "url": f"http://x/{i}", "source": "t", "lang": "en"} for i, t in docs]


def _near_dup_sets() -> list[tuple[str, list[tuple[str, str]], int, int]]:
    """(name, documents, word n-gram, char n-gram) for every set of shared/data/near_dup."""
    def jsonl(name: str) -> list[tuple[str, str]]:
        lines = (NEAR_DUP / name / "docs.jsonl").read_text(encoding="utf-8").splitlines()
        return [(d["id"], d["text"]) for d in map(json.loads, lines)]

    fixture = [(p.stem, p.read_text(encoding="utf-8"))
               for p in sorted((NEAR_DUP / "cs336_fuzzy_duplicates_fixture").glob("*.txt"))]
    return [("tang char3", jsonl("tang_poems_two_editions"), 5, 3),
            ("tang char2", jsonl("tang_poems_two_editions"), 5, 2),
            ("licences word5", jsonl("choosealicense_license_texts"), 5, 5),
            ("licences word3", jsonl("choosealicense_license_texts"), 3, 5), ("cs336 fixture word5", fixture, 5, 5)]


def _shards(tmp: Path, docs: list[tuple[str, str]], n: int, seed: int = 0) -> list[Path]:
    rows = _rows(docs)
    random.Random(seed).shuffle(rows)  # near-duplicates land in different shards
    files = []
    for s in range(n):
        files.append(tmp / f"in-{s}.parquet")
        write_documents(rows[s::n], files[-1])
    return files


def _decisions(files: list[Path], work: Path, cfg: DedupConfig, sharded: bool, min_ranks: int = 3) -> list[list[dict]]:
    prefixes = [work / f"sig-{s:05d}" for s in range(len(files))]
    for f, p in zip(files, prefixes):
        dedup_signatures([f], p, cfg)
    out = work / "decisions"
    if sharded:
        stats = dedup_decide_sharded(prefixes, out, cfg, min_ranks=min_ranks)
    else:
        stats = dedup_decide(prefixes, out, cfg)
    counts = {k: stats[k] for k in ("exact_groups", "clusters", "duplicates_of_index")}
    return [counts, *(pq.read_table(out / f"decisions-{s:05d}.parquet").to_pylist() for s in range(len(files)))]


@needs_shared
@pytest.mark.parametrize("threshold", [0.8, 0.5])
def test_same_decisions_as_one_process_on_near_dup_sets(tmp_path: Path, threshold: float) -> None:
    for k, (name, docs, word_n, char_n) in enumerate(_near_dup_sets()):
        cfg = DedupConfig(threshold=threshold, word_ngram=word_n, char_ngram=char_n)
        files = _shards(tmp_path / f"set{k}", docs, 4)
        one = _decisions(files, tmp_path / f"one{k}", cfg, sharded=False)
        many = _decisions(files, tmp_path / f"many{k}", cfg, sharded=True)
        assert many == one, name
        assert any(d["code"] != 0 for shard in one[1:] for d in shard), name


def test_bad_shards_and_repeated_ids_match_one_process(tmp_path: Path) -> None:
    """An empty shard, a shard of empty texts only (all exact duplicates but one), and ids repeated across
    shards: with the same text an exact duplicate, with another text a duplicate_id (first occurrence wins)."""
    base = "the quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat near the door"
    shard_docs = [
        [("a", base), ("b", base + " today"), ("r", "first text of r is here and it is long enough to shingle")],
        [],
        [("e1", ""), ("e2", ""), ("e3", "")],
        [("r", "a different text under the same id r that must be dropped as a duplicate id"), ("a", base),
         ("c", base.upper())],
    ]
    files = []
    for s, docs in enumerate(shard_docs):
        files.append(tmp_path / f"in-{s}.parquet")
        write_documents(_rows(docs), files[-1])
    cfg = DedupConfig()
    one = _decisions(files, tmp_path / "one", cfg, sharded=False)
    assert _decisions(files, tmp_path / "many", cfg, sharded=True, min_ranks=2) == one
    codes = [[d["code"] for d in shard] for shard in one[1:]]
    assert codes[1] == [] and codes[2].count(0) == 1
    assert codes[3][:2] == [3, 1]  # r again with another text: duplicate_id; a again, same text: exact
    stats = run_dedup(files, tmp_path / "out", cfg)
    assert stats["docs_in"] == 9 and stats["dropped"]["duplicate_id"] == 1
    assert len(list((tmp_path / "out").glob("docs-*.parquet"))) == 4  # one output shard per input, empty ones too


def test_truncated_run_is_detected_and_signed_again(tmp_path: Path) -> None:
    docs = [(f"d{i}", f"document number {i} has some words in it to make shingles of five words") for i in range(50)]
    files = _shards(tmp_path, docs + [("copy", docs[3][1])], 2)
    cfg = DedupConfig()
    prefixes = [tmp_path / f"sig-{s:05d}" for s in range(2)]
    for f, p in zip(files, prefixes):
        dedup_signatures([f], p, cfg)
    bands = ds.run_path(prefixes[1], "bands")
    data = bands.read_bytes()
    bands.write_bytes(data[: len(data) // 2])  # what a kill in the middle of a write would leave
    with pytest.raises(ds.CorruptRun, match="truncated|footer"):
        ds.Run(bands)
    assert ds.check_runs(prefixes) == [1]
    flipped = bytearray(data)
    flipped[0] ^= 0xFF  # same size, damaged content: only the checksum sees it
    bands.write_bytes(bytes(flipped))
    assert ds.check_runs(prefixes) == [1]
    resigned = []
    decided = dedup_decide_sharded(
        prefixes, tmp_path / "dec", cfg,
        resign=lambda s: resigned.append(s) or dedup_signatures([files[s]], prefixes[s], cfg))
    assert resigned == [1] and decided["rebuilt_shards"] == [1] and decided["exact_groups"] == 50
    with pytest.raises(ds.CorruptRun):  # without a way to sign again: an error, never a half-read file
        bands.write_bytes(data[:100])
        dedup_decide_sharded(prefixes, tmp_path / "dec2", cfg)


def test_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    import shutil

    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(OSError, match=str(tmp_path)) as err:
        ds.check_free_space(tmp_path, free * 2)
    assert "GiB free" in str(err.value) and "needs about" in str(err.value)
    ds.check_free_space(tmp_path, 1)


def test_rank_count_does_not_change_decisions(tmp_path: Path) -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(300)]
    docs = []
    for i in range(300):
        text = " ".join(rng.choice(words) for _ in range(60))
        docs.append((f"d{i}", text))
        if i % 5 == 0:
            t = text.split()
            t[rng.randrange(len(t))] = "changed"
            docs.append((f"d{i}-v", " ".join(t)))
    files = _shards(tmp_path, docs, 3)
    cfg = DedupConfig()
    one = _decisions(files, tmp_path / "r1", cfg, sharded=True, min_ranks=1)
    assert _decisions(files, tmp_path / "r7", cfg, sharded=True, min_ranks=7) == one
    assert _decisions(files, tmp_path / "ref", cfg, sharded=False) == one
    assert sum(d["code"] == 2 for shard in one[1:] for d in shard) >= 50
    assert {r["id"] for r in read_documents(files)} >= {"d0", "d0-v"}
