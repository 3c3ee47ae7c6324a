"""curation.readers on the real WARC/WET files of shared/data/warc (counts from its SOURCES.md)."""

from __future__ import annotations

import gzip
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
    responses = (len(records) + stats.skipped["http_status"] + stats.skipped["no_http_headers"]
                 + stats.skipped["non_html"])
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


# ------------------------------------------------------------------ dialects (hand-written fixtures)
# No real WARC/0.18 or WARC/1.1 file was found in any public fixture set (SOURCES.md), so these records
# are written by hand here, modelled on the real WARC/0.17 Heritrix file above: same header fields, CRLF
# line ends, a blank line and two CRLFs after each block.

PAGE = b"<html><head><title>Dialect</title></head><body><p>Hello from an old crawler.</p></body></html>"


def _record(version: str, rec_type: str, uri: str, block: bytes, content_type: str) -> bytes:
    head = (
        f"WARC/{version}\r\nWARC-Type: {rec_type}\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Date: 2008-04-30T20:48:25Z\r\nWARC-Record-ID: <urn:uuid:{abs(hash((version, uri, rec_type)))}>\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    ).encode()
    return head + block + b"\r\n\r\n"


def _response(version: str, uri: str, body: bytes = PAGE, mime: str = "text/html; charset=utf-8") -> bytes:
    http = f"HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    return _record(version, "response", uri, http, "application/http; msgtype=response")


@pytest.mark.parametrize("version", ["0.17", "0.18", "1.0", "1.1"])
@pytest.mark.parametrize("compressed", [False, True])
def test_warc_dialects_plain_and_per_record_gzip(tmp_path: Path, version: str, compressed: bool) -> None:
    records = [
        _record(version, "warcinfo", "", b"software: hand-written\r\n", "application/warc-fields"),
        _record(version, "request", "http://a.example/", b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
                "application/http; msgtype=request"),
        _response(version, "http://a.example/"),
        _response(version, "http://a.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
        _record(version, "revisit", "http://a.example/", b"HTTP/1.1 200 OK\r\n\r\n",
                "application/http; msgtype=response"),
    ]
    path = tmp_path / f"dialect-{version}.warc{'.gz' if compressed else ''}"
    path.write_bytes(b"".join(gzip.compress(r) for r in records) if compressed else b"".join(records))
    got, stats = read(path)
    assert [(r["url"], r["content"], r["charset"]) for r in got] == [("http://a.example/", PAGE, "utf-8")]
    assert stats.skipped == {"warcinfo": 1, "request": 1, "non_html": 1, "revisit": 1}
    assert stats.records == 5 and not stats.damage


def test_truncated_plain_warc_keeps_earlier_records(tmp_path: Path) -> None:
    records = [_response("1.0", f"http://a.example/{i}") for i in range(3)]  # lengths differ (random ids)
    data = b"".join(records)
    cut = tmp_path / "cut.warc"
    cut.write_bytes(data[: len(data) - 40])  # the third record loses its last 40 bytes
    got, stats = read(cut)
    assert [r["url"] for r in got] == ["http://a.example/0", "http://a.example/1", "http://a.example/2"]
    assert got[2]["truncated"] and not got[0]["truncated"]
    assert len(stats.damage) == 1 and stats.damage[0]["offset"] == len(records[0]) + len(records[1])


def test_garbage_between_records_is_skipped_and_reported(tmp_path: Path) -> None:
    good = _response("1.0", "http://a.example/1")
    bad = tmp_path / "garbage.warc"
    bad.write_bytes(good + b"\x00\xffnot a warc record at all\r\n" * 20 + _response("1.0", "http://a.example/2"))
    got, stats = read(bad)
    assert [r["url"] for r in got] == ["http://a.example/1", "http://a.example/2"]
    assert len(stats.damage) >= 1 and stats.damage[0]["offset"] >= len(good)


SHARED_FILES = sorted(p.name for p in WARC.glob("*") if p.name != "SOURCES.md") if WARC.is_dir() else []


@pytest.mark.parametrize("name", SHARED_FILES)
def test_no_crash_on_any_shared_warc_file(name: str) -> None:
    records, stats = read(name)
    assert stats.yielded == len(records)
    assert stats.records >= len(records) + sum(stats.skipped.values()) - stats.skipped.get("bad_json", 0)
    assert stats.records > 0
    json.dumps(stats.as_dict())


def test_wat_metadata_records_are_skipped() -> None:
    records, stats = read("whirlwind-cc-main-2024-22.warc.wat.gz")
    assert records == [] and stats.skipped["metadata"] >= 1 and not stats.damage


# ------------------------------------------------------------------------------ inputs: globs, URLs


def test_expand_inputs_globs_directories_and_urls(tmp_path: Path) -> None:
    import fsspec

    from curation.readers import expand_inputs

    assert expand_inputs([str(WARC / "dolma-sample-*.warc.gz")]) == [
        str(WARC / "dolma-sample-0000.warc.gz"), str(WARC / "dolma-sample-0001.warc.gz")]
    assert str(WARC / "cc_net-sample-wet.warc.txt") in expand_inputs([WARC])
    assert expand_inputs([f"file://{WARC / 'warcio-example.warc.gz'}"]) == [f"file://{WARC / 'warcio-example.warc.gz'}"]
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "nothing-*.warc.gz")])
    with pytest.raises(FileNotFoundError):
        expand_inputs(["memory://lmpipe-test/absent.warc.gz"])

    fs = fsspec.filesystem("memory")
    fs.pipe("/lmpipe-test/a.warc.gz", (WARC / "cc-main-2020-34-sample.warc.gz").read_bytes())
    fs.pipe("/lmpipe-test/b.jsonl", b'{"text": "from memory", "url": "m"}\n')
    try:
        urls = expand_inputs(["memory://lmpipe-test/*"])
        assert [u.rsplit("/", 1)[1] for u in urls] == ["a.warc.gz", "b.jsonl"]
        stats = ReadStats()
        assert len(list(read_records(urls[0], stats))) == 16 and stats.skipped["request"] == 17
        assert [r["content"] for r in read_records(urls[1])] == ["from memory"]
    finally:
        fs.rm("/lmpipe-test", recursive=True)
    (record,) = read_records(f"file://{WARC / 'warcio-example-iana.org-chunked.warc'}")
    assert record["content"].startswith(b"<!doctype html>")


def test_truncated_jsonl_gz_keeps_lines_and_reports_damage(tmp_path: Path) -> None:
    import gzip as gz

    lines = "".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(200)).encode()
    data = gz.compress(lines)
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records, stats = read(path)
    assert 0 < len(records) < 200 and len(stats.damage) == 1
