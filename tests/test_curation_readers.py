"""curation.readers on the real WARC/WET files of shared/data/warc (counts from its SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.readers import ReadStats, read_records

SHARED = Path(__file__).resolve().parents[2] / "shared"
WARC = SHARED / "data" / "warc"


@pytest.fixture(autouse=True)
def _needs_shared() -> None:
    if not WARC.is_dir():
        pytest.skip(f"{WARC} is absent (shared test data)")


def read(name: str | Path) -> tuple[list[dict], ReadStats]:
    stats = ReadStats()
    records = list(read_records(WARC / name if isinstance(name, str) else name, stats))
    return records, stats


def test_common_crawl_sample_counts() -> None:
    records, stats = read("cc-main-2020-34-sample.warc.gz")
    # SOURCES.md: 1 warcinfo, 17 request, 16 response, 16 metadata; all 16 responses are HTML pages.
    assert len(records) == 16
    assert stats.skipped == {"warcinfo": 1, "request": 17, "metadata": 16}
    assert stats.records == 50 and not stats.damage
    assert all(r["kind"] == "html" and isinstance(r["content"], bytes) for r in records)
    charsets = {r["url"]: r["charset"] for r in records}
    assert charsets["http://037426.cn/"] == "gb2312"  # from the HTTP Content-Type header


def test_dolma_wget_warcs_hold_37_pages() -> None:
    first, stats0 = read("dolma-sample-0000.warc.gz")
    second, stats1 = read("dolma-sample-0001.warc.gz")
    assert len(first) + len(second) == 37
    assert stats0.skipped["resource"] == 2 and stats1.skipped["request"] == 15


def test_heritrix_warc_017_is_read() -> None:
    records, stats = read("aut-archiveit-227-example.warc.gz")
    # SOURCES.md: 299 responses, 140 of them text/html. Every response is either a document or counted.
    responses = len(records) + stats.skipped["http_status"] + stats.skipped["no_http_headers"] + stats.skipped["non_html"]
    assert responses == 299
    assert stats.skipped["warcinfo"] == 1 and stats.skipped["request"] == 261 and stats.skipped["metadata"] == 261
    assert 50 < len(records) <= 140
    assert not stats.damage


def test_wget_and_revisit_records_are_skipped_by_reason() -> None:
    records, stats = read("ukwa-IAH-urls-wget.warc.gz")
    assert len(records) + stats.skipped["http_status"] + stats.skipped["non_html"] == 16  # 16 responses
    records, stats = read("warcio-example.warc.gz")
    assert len(records) == 1 and stats.skipped["revisit"] == 1


def test_chunked_transfer_encoding_is_decoded() -> None:
    (record,), _ = read("warcio-example-iana.org-chunked.warc")
    assert record["content"].startswith(b"<!doctype html>")
    assert record["content"].rstrip().endswith(b"</html>")


def test_wet_conversion_record_is_text() -> None:
    (record,), stats = read("whirlwind-cc-main-2024-22.warc.wet.gz")
    assert record["kind"] == "text" and record["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete" in record["content"]
    assert stats.skipped == {"warcinfo": 1}


def test_malformed_wet_resyncs_and_reports_damage() -> None:
    # cc_net's hand-written WET fixture has wrong Content-Lengths: every record is recovered, and reported.
    records, stats = read("cc_net-sample-wet.warc.txt")
    assert [r["url"] for r in records] == ["http://sample_english.com", "http://sample_chinese.zh", "http://sample_russian.ru"]
    assert len(stats.damage) == 3 and all(d["offset"] > 0 for d in stats.damage)


def test_ukwa_truncated_fixture_is_read_without_error() -> None:
    # Despite its name this file is well-formed (the crawl was cut after 7 URLs, then recompressed).
    records, stats = read("ukwa-IAH-20080430204825-00000-blackbook-truncated.warc.gz")
    assert len(records) == 2 and stats.skipped["non_html"] == 5 and not stats.damage


def test_truncated_file_keeps_readable_records_and_reports_damage(tmp_path: Path) -> None:
    data = (WARC / "cc-main-2020-34-sample.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    records, stats = read(cut)
    assert 0 < len(records) < 16
    assert len(stats.damage) == 1 and 0 < stats.damage[0]["offset"] < len(data) // 2
    assert records[-1]["truncated"]
    json.dumps(stats.as_dict())  # stats are JSON-serialisable


def test_corrupt_gzip_member_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    data = bytearray((WARC / "cc-main-2020-34-sample.warc.gz").read_bytes())
    data[60000:60200] = bytes(200)  # zero out 200 bytes inside one response's gzip member
    bad = tmp_path / "corrupt.warc.gz"
    bad.write_bytes(bytes(data))
    records, stats = read(bad)
    assert len(records) == 16  # the damaged record is yielded, marked truncated
    assert sum(r["truncated"] for r in records) == 1 and len(stats.damage) == 1


def test_jsonl_and_parquet_inputs(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"text": "hello", "url": "u1", "id": "a"}\nnot json\n{"no_text": 1}\n', encoding="utf-8")
    records, stats = read(jsonl)
    assert [(r["id"], r["content"], r["kind"]) for r in records] == [("a", "hello", "text")]
    assert stats.skipped == {"bad_json": 1, "no_text": 1}
    table = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": ["one", "two"], "title": ["t1", None]}), table)
    records, _ = read(table)
    assert [(r["content"], r["title"]) for r in records] == [("one", "t1"), ("two", None)]


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_records(tmp_path / "nope.warc.gz"))
