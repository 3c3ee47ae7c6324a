"""Ingest throughput: WARC records per second of CPU time (one process, one core), reader only and reader +
main-text extraction, on every WARC/WET/WAT file of ../shared/data/warc, for lmpipe and named peers in one run.

* lmpipe: `curation.readers.read_records` (warcio underneath, plus damage handling and record filtering)
  and `curation.extract.extract_document` on each HTML record.
* peer "warcio + trafilatura": a bare warcio `ArchiveIterator` loop that reads every 2xx response payload
  whose Content-Type is HTML (what datatrove's WarcReader does), then `trafilatura.extract` (defaults).
* peer "fastwarc + resiliparse" (C++ reader and extractor, for scale): FastWARC's ArchiveIterator
  and `extract_plain_text(main_content=True)`.

Reader-only rows: best of `--repeat` runs of 10 passes over all files; reader + extraction: one pass
(time.process_time). Records = every WARC record in the files (requests, metadata and all); pages = 2xx
HTML responses handed to extraction.

    .venv/bin/python bench/ingest.py          # ~1 min
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.extract import decode_html, extract_document  # noqa: E402
from curation.readers import ReadStats, read_records  # noqa: E402

WARC = REPO.parent / "shared" / "data" / "warc"


def lmpipe(files: list[Path], extract: bool) -> tuple[int, int]:
    records = pages = 0
    for path in files:
        stats = ReadStats()
        for record in read_records(path, stats):
            if record["kind"] == "html":
                pages += 1
                if extract:
                    extract_document(record["content"], record["url"], record["charset"])
        records += stats.records
    return records, pages


def warcio_trafilatura(files: list[Path], extract: bool) -> tuple[int, int]:
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    records = pages = 0
    for path in files:
        with path.open("rb") as fh:
            try:
                for record in ArchiveIterator(fh):
                    records += 1
                    if record.rec_type != "response" or record.http_headers is None:
                        continue
                    if not (record.http_headers.get_statuscode() or "").startswith("2"):
                        continue
                    if "html" not in (record.http_headers.get_header("Content-Type") or ""):
                        continue
                    payload = record.content_stream().read()
                    pages += 1
                    if extract:
                        trafilatura.extract(decode_html(payload))
            except Exception:  # a bare loop stops at the first damaged record (none in these files)
                continue
    return records, pages


def fastwarc_resiliparse(files: list[Path], extract: bool) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    records = pages = 0
    for path in files:
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh, parse_http=True, record_types=WarcRecordType.any_type):
                records += 1
                if record.record_type != WarcRecordType.response or not record.http_headers:
                    continue
                if not 200 <= (record.http_headers.status_code or 0) < 300:
                    continue
                if "html" not in (record.http_headers.get("Content-Type") or ""):
                    continue
                payload = record.reader.read()
                pages += 1
                if extract:
                    extract_plain_text(HTMLTree.parse(decode_html(payload)), main_content=True)
    return records, pages


READERS: dict[str, Callable[[list[Path], bool], tuple[int, int]]] = {
    "lmpipe": lmpipe,
    "warcio + trafilatura": warcio_trafilatura,
    "fastwarc + resiliparse": fastwarc_resiliparse,
}


def measure(fn: Callable[[list[Path], bool], tuple[int, int]], files: list[Path], extract: bool,
            repeat: int) -> tuple[float, int, int]:
    best = float("inf")
    records = pages = 0
    for _ in range(repeat):
        start = time.process_time()
        records, pages = fn(files, extract)
        best = min(best, time.process_time() - start)
    return best, records, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not WARC.is_dir():
        sys.exit(f"{WARC} is absent: this bench needs the shared WARC files")
    files = sorted(p for p in WARC.iterdir() if p.name != "SOURCES.md")
    rows = []
    for extract in (False, True):
        for name, fn in READERS.items():
            fn(files[:1], extract)  # warm-up: imports, lazy tables
            # reader only: 10 passes over the files per measurement (one pass is ~0.07 s, too short to time)
            seconds, records, pages = measure(fn, files if extract else files * 10, extract,
                                              args.repeat if not extract else 1)
            rows.append((extract, name, seconds, records, pages))
            print(f"# {name} extract={extract}: {seconds:.2f} s", file=sys.stderr, flush=True)
    print(f"{time.strftime('%Y-%m-%d')} · {platform.machine()} · {len(files)} files of ../shared/data/warc "
          f"({sum(p.stat().st_size for p in files) / 1e6:.1f} MB) · `.venv/bin/python bench/ingest.py`\n")
    print("| mode | reader | records | HTML pages | CPU s | records/s, one core | pages/s, one core "
          "| lmpipe speed / this |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for extract in (False, True):
        ours = next(r for r in rows if r[0] == extract and r[1] == "lmpipe")
        for _, name, seconds, records, pages in (r for r in rows if r[0] == extract):
            mode = "reader + extraction" if extract else "reader only"
            ratio = (ours[3] / ours[2]) / (records / seconds)
            print(f"| {mode} | {name} | {records} | {pages} | {seconds:.2f} | {records / seconds:,.0f} | "
                  f"{pages / seconds:,.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
