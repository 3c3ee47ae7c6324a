"""The streaming mix and report (curation.mix, curation.report) on real demo documents split over shards:
output bytes independent of batch and bucket sizes, budget, top-k, rehydration, empty shards, repeated ids,
a truncated bucket file and a too-small disk. Runs in a few seconds."""

from __future__ import annotations

import errno
import hashlib
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import mix as mixing
from curation import report
from curation.config import MixConfig
from curation.documents import write_documents
from curation.mix import mix

from test_mix import real_docs  # noqa: E402  (tests/ is on sys.path)

EXTRA = ["quality_score", "dup_cluster", "dup_cluster_size"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """120 real documents in three shards, plus a shard with zero rows and one without the extra columns."""
    root = tmp_path_factory.mktemp("shards")
    rows = real_docs()
    write_documents(rows[:45], root / "docs-00000.parquet", EXTRA)
    write_documents([], root / "docs-00001.parquet", EXTRA)
    write_documents(rows[45:100], root / "docs-00002.parquet", EXTRA)
    write_documents([], root / "docs-00003.parquet")  # zero rows, base columns only
    write_documents(rows[100:], root / "docs-00004.parquet", EXTRA)
    return root


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.parquet"))}


def rows_of(out: Path, split: str) -> list[dict]:
    return [r for p in sorted(out.glob(f"{split}-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_bytes_do_not_depend_on_batch_or_bucket_size(shards: Path, tmp_path: Path) -> None:
    cfg = MixConfig(val_fraction=0.1, rehydrate={1: 1.0, 5: 2.0}, weights={"en": 1.5, "zh": 0.7}, shard_rows=40)
    big = mix([shards], tmp_path / "big", cfg)
    small = mix([shards], tmp_path / "small", cfg, batch_rows=7, bucket_bytes=2_000)
    mix([shards], tmp_path / "again", cfg, batch_rows=7, bucket_bytes=2_000)
    assert big["shuffle"]["train"]["buckets"] == 1 and small["shuffle"]["train"]["buckets"] > 8  # really bucketed
    assert digest(tmp_path / "big") == digest(tmp_path / "small") == digest(tmp_path / "again")
    assert {k: v for k, v in big.items() if k != "shuffle"} == {k: v for k, v in small.items() if k != "shuffle"}
    assert not (tmp_path / "small" / ".mix-buckets").exists()  # scratch removed
    # the rows are in shuffle-key order, each copy of a document once, shards of 40 rows
    train = rows_of(tmp_path / "small", "train")
    copies = {r["id"]: sum(o["id"] == r["id"] for o in train) for r in train}
    expected = sorted((mixing._hash("order", cfg.seed, doc, c), doc) for doc, n in copies.items() for c in range(n))
    assert [r["id"] for r in train] == [doc for _, doc in expected] and len(train) == small["train"]["rows"]
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in sorted((tmp_path / "small").glob("train-*.parquet"))]
    assert sizes[:-1] == [40] * (len(sizes) - 1) and sum(sizes) == len(train)


def test_token_budget_is_honoured(shards: Path, tmp_path: Path) -> None:
    budget = 20_000
    stats = mix([shards], tmp_path / "b", MixConfig(val_fraction=0.1, token_budget=budget), batch_rows=10)
    train = rows_of(tmp_path / "b", "train")
    tokens = sum(len(r["text"]) / {"en": 4.0, "zh": 1.4}[r["lang"]] for r in train)
    assert tokens == pytest.approx(stats["train"]["tokens_est"], abs=1)
    assert abs(tokens - budget) < 0.15 * budget  # copies are whole: the budget holds in expectation


def test_top_fraction_keeps_the_best_of_each_language(shards: Path, tmp_path: Path) -> None:
    stats = mix([shards], tmp_path / "t", MixConfig(top_fraction=0.3, val_fraction=0.1), batch_rows=9,
                bucket_bytes=4_000)
    out = rows_of(tmp_path / "t", "train") + rows_of(tmp_path / "t", "val")
    for lang in ("en", "zh"):
        scores = sorted((r["quality_score"] for r in real_docs() if r["lang"] == lang), reverse=True)
        kept = [r["quality_score"] for r in out if r["lang"] == lang]
        assert len(kept) == math.ceil(0.3 * len(scores))
        assert min(kept) >= scores[len(kept) - 1]
    assert stats["dropped"]["below_top_fraction"] == 120 - len(out)


def test_rehydration_gives_whole_copies_in_train_only(shards: Path, tmp_path: Path) -> None:
    mix([shards], tmp_path / "r", MixConfig(rehydrate={1: 1.0, 5: 3.0}, val_fraction=0.1), batch_rows=11,
        bucket_bytes=3_000)
    size = {r["id"]: r["dup_cluster_size"] for r in real_docs()}
    train, val = rows_of(tmp_path / "r", "train"), rows_of(tmp_path / "r", "val")
    for doc in {r["id"] for r in train}:
        assert sum(r["id"] == doc for r in train) == (3 if size[doc] >= 5 else 1)
    assert len({r["id"] for r in val}) == len(val)


def test_empty_corpus_and_a_shard_whose_documents_are_all_dropped(tmp_path: Path) -> None:
    write_documents([], tmp_path / "empty" / "docs-00000.parquet", EXTRA)
    stats = mix([tmp_path / "empty"], tmp_path / "out", MixConfig())
    assert stats["docs_in"] == 0 and sorted(digest(tmp_path / "out")) == ["train-00000.parquet", "val-00000.parquet"]
    assert pq.read_table(tmp_path / "out" / "train-00000.parquet").num_rows == 0
    rows = real_docs()
    write_documents([r for r in rows if r["source"] == "en-a.warc.gz"], tmp_path / "two" / "docs-00000.parquet", EXTRA)
    write_documents([r for r in rows if r["source"] != "en-a.warc.gz"], tmp_path / "two" / "docs-00001.parquet", EXTRA)
    stats = mix([tmp_path / "two"], tmp_path / "out2", MixConfig(source_weights={"en-a.warc.gz": 0}), batch_rows=5)
    assert stats["dropped"]["weight_zero"] == len([r for r in rows if r["source"] == "en-a.warc.gz"])
    assert stats["rows_out"] == len(rows) - stats["dropped"]["weight_zero"]


def test_an_id_repeated_across_shards_is_two_rows_with_the_same_decisions(tmp_path: Path) -> None:
    """Ids repeat when the same page is ingested twice: each row is mixed, both get the same split and copies."""
    rows = real_docs(20)
    write_documents(rows, tmp_path / "in" / "docs-00000.parquet", EXTRA)
    write_documents(rows[:5], tmp_path / "in" / "docs-00001.parquet", EXTRA)
    stats = mix([tmp_path / "in"], tmp_path / "out", MixConfig(val_fraction=0.2, weights={"en": 1.5, "zh": 1.5}))
    train, val = rows_of(tmp_path / "out", "train"), rows_of(tmp_path / "out", "val")
    for r in rows[:5]:
        in_train, in_val = sum(o["id"] == r["id"] for o in train), sum(o["id"] == r["id"] for o in val)
        assert in_train % 2 == 0 and in_val in (0, 2) and not (in_train and in_val)  # both rows, same decisions
    assert stats["docs_in"] == 45


def test_truncated_bucket_file_is_detected(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.string())])
    buckets = mixing._Buckets(tmp_path / "b", 1, 1 << 20, schema)
    table = pa.table({"id": ["a", "b"], mixing._KEY: pa.array([2, 1], pa.uint64()), mixing._ROW: [0, 1]})
    buckets.add(table)
    buckets.close()
    path = buckets.path(0)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        list(buckets.sorted_tables())


def test_too_small_disk_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=re.escape(str(tmp_path))) as info:
        mixing._check_space(tmp_path, 10**18)
    assert info.value.errno == errno.ENOSPC


def test_report_streams_and_samples_every_decile(shards: Path, tmp_path: Path, monkeypatch) -> None:
    stats = mix([shards], tmp_path / "m", MixConfig(val_fraction=0.1))
    files = sorted(shards.glob("*.parquet"))
    report.write_report(tmp_path / "m", files, stats, [], batch_rows=1000)
    whole = (tmp_path / "m" / "report" / "report.md").read_text(encoding="utf-8")
    report.write_report(tmp_path / "m", files, stats, [], batch_rows=6)
    assert (tmp_path / "m" / "report" / "report.md").read_text(encoding="utf-8") == whole
    monkeypatch.setattr(report, "RESERVOIR", 15)  # fewer scores kept than each language has: edges from a sample
    report.write_report(tmp_path / "m", files, stats, [], batch_rows=6)
    md = (tmp_path / "m" / "report" / "report.md").read_text(encoding="utf-8")
    rows = [ln.split("|") for ln in md.splitlines() if re.match(r"\| \d+ \| \d\.\d{3} \| (en|zh) \|", ln)]
    for lang in ("en", "zh"):
        mine = [(int(r[1]), float(r[2])) for r in rows if r[3].strip() == lang]
        assert {d for d, _ in mine} == set(range(1, 11))
        scores = [r["quality_score"] for r in real_docs() if r["lang"] == lang]
        assert min(s for _, s in mine) == min(scores) and max(s for _, s in mine) == max(scores)


def test_report_from_the_mix_lengths_equals_reading_the_texts(shards: Path, tmp_path: Path) -> None:
    """The lengths the mix hands over (with repeated rows: rehydration gives copies > 1) draw the same
    histograms as decoding the text columns of the input and of the written shards."""
    cfg = MixConfig(val_fraction=0.1, rehydrate={1: 1.0, 2: 3.0}, min_quality=0.2)
    files = sorted(shards.glob("*.parquet"))
    stats, lengths = mixing.mix_with_lengths(files, tmp_path / "m", cfg)
    assert int(lengths.copies.max()) > 1 and int((lengths.copies == 0).sum()) > 0
    mixed = sorted((tmp_path / "m").glob("train-*.parquet")) + sorted((tmp_path / "m").glob("val-*.parquet"))
    for read, handed in ((report._summarise(files, 7, scores=False), report._summary_of_lengths(lengths, False)),
                         (report._summarise(mixed, 7, scores=False), report._summary_of_lengths(lengths, True))):
        assert read.rows == handed.rows
        assert sorted(read.lengths) == sorted(handed.lengths)
        for lang, counts in read.lengths.items():
            assert counts.tolist() == handed.lengths[lang].tolist(), lang
    report.write_report(tmp_path / "m", files, stats, [])
    pngs = {p: (tmp_path / "m" / "report" / p).read_bytes() for p in report.PLOTS}
    md = (tmp_path / "m" / "report" / "report.md").read_text(encoding="utf-8")
    report.write_report(tmp_path / "m", files, stats, [], lengths=lengths)
    assert (tmp_path / "m" / "report" / "report.md").read_text(encoding="utf-8") == md
    assert {p: (tmp_path / "m" / "report" / p).read_bytes() for p in report.PLOTS} == pngs
