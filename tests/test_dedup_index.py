"""The persistent dedup index at scale: segments merged (compaction) give the same results as never merged,
a re-run batch is still recognised inside a merged segment, and a merge killed before removing its inputs
leaves an index that reads the same."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from curation.config import DedupConfig
from curation.dedup import DedupIndex, compact_index, near_duplicate_clusters, segment_batches
from curation.documents import read_documents, write_documents
from curation.stages import run_dedup

WORDS = [f"w{i}" for i in range(400)]


def _batches(n_batches: int, per_batch: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """Batches of random 50-word texts; a fifth of each batch near-copies (one word changed) earlier texts,
    of this batch or of earlier ones, so refreshes match documents kept by earlier refreshes."""
    rng = random.Random(seed)
    seen: list[str] = []
    out = []
    for b in range(n_batches):
        batch = []
        for i in range(per_batch):
            if seen and rng.random() < 0.2:
                words = rng.choice(seen).split()
                words[rng.randrange(len(words))] = "changed"
                text = " ".join(words)
            else:
                text = " ".join(rng.choice(WORDS) for _ in range(50))
            seen.append(text)
            batch.append((f"b{b}-{i}", text))
        out.append(batch)
    return out


def _rows(docs: list[tuple[str, str]]) -> list[dict]:
    return [{"id": i, "text": t, "url": f"http://x/{i}", "source": "t", "lang": "en"} for i, t in docs]


def _refresh(tmp: Path, name: str, batches: list[list[tuple[str, str]]], compact: bool) -> list[tuple]:
    index = tmp / name / "index"
    cfg = DedupConfig(index_dir=str(index))
    results = []
    for b, docs in enumerate(batches):
        write_documents(_rows(docs), tmp / name / f"in-{b}.parquet")
        stats = run_dedup([tmp / name / f"in-{b}.parquet"], tmp / name / f"out-{b}", cfg)
        removed = sorted((r["id"], r["drop_reason"], r["duplicate_of"])
                         for r in read_documents(sorted((tmp / name / f"out-{b}" / "removed").glob("*.parquet"))))
        kept = sorted(r["id"] for r in read_documents(sorted((tmp / name / f"out-{b}").glob("docs-*.parquet"))))
        results.append((kept, removed, stats["duplicates_of_index"]))
        if compact:
            compact_index(index, max_segments=2, fanout=2)
    return results


def test_compacted_index_gives_the_same_results(tmp_path: Path) -> None:
    batches = _batches(7, 60)
    plain = _refresh(tmp_path, "plain", batches, compact=False)
    merged = _refresh(tmp_path, "merged", batches, compact=True)
    assert merged == plain
    assert sum(r[2] for r in plain) >= 20  # refreshes did match documents of earlier ones
    plain_segs = DedupIndex(tmp_path / "plain" / "index", _params(tmp_path / "plain" / "index")).segments()
    merged_segs = DedupIndex(tmp_path / "merged" / "index", _params(tmp_path / "merged" / "index")).segments()
    assert len(plain_segs) == 7 and len(merged_segs) <= 2
    assert max(len(segment_batches(s)) for s in merged_segs) >= 4  # compaction happened, more than once
    # Same documents, same order of addition.
    assert [b for s in merged_segs for b in segment_batches(s)] == [b for s in plain_segs for b in segment_batches(s)]


def _params(path: Path) -> dict:
    import json

    return json.loads((path / "meta.json").read_text())["params"]


def test_rerun_of_a_merged_batch_is_not_matched_against_itself(tmp_path: Path) -> None:
    batches = _batches(3, 40, seed=1)
    index = tmp_path / "index"
    first = [near_duplicate_clusters(docs, index_dir=index) for docs in batches]
    assert compact_index(index, max_segments=1, fanout=3)
    assert len(list(index.glob("seg-*"))) == 1
    # The second batch again: its own documents (now inside the merged segment) are not its duplicates.
    assert near_duplicate_clusters(batches[1], index_dir=index) == first[1]
    assert len(list(index.glob("seg-*"))) == 1


def test_merge_killed_before_removing_its_inputs(tmp_path: Path) -> None:
    batches = _batches(3, 40, seed=2)
    index = tmp_path / "index"
    for docs in batches:
        near_duplicate_clusters(docs, index_dir=index)
    before = sorted(index.glob("seg-*"))
    saved = tmp_path / "saved"
    shutil.copytree(index, saved)
    compact_index(index, max_segments=1, fanout=3)
    merged = next(index.glob("seg-c*"))
    for seg in before:  # as if the merge was killed after its rename, before removing the merged segments
        shutil.copytree(saved / seg.name, index / seg.name)
    params = _params(index)
    assert [s.name for s in DedupIndex(index, params).segments()] == [merged.name]
    assert sorted(p.name for p in index.glob("seg-*")) == [merged.name]
    probe = [("probe", batches[2][5][1])]
    assert near_duplicate_clusters(probe, index_dir=index, update_index=False) == {"probe": "b2-5"}
