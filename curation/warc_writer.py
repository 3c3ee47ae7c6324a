"""Write standard WARC 1.1 files for the crawler: one gzip member per record, like Common Crawl's files.

Each file starts with a ``warcinfo`` record (software, format, robots policy, user agent), then one
``request`` + ``response`` pair per HTTP exchange. Every record carries WARC-Record-ID, WARC-Date,
WARC-Block-Digest (``sha1:`` + base32, the customary form) and Content-Length; exchange records also
WARC-Target-URI, WARC-IP-Address, WARC-Warcinfo-ID and WARC-Concurrent-To (the other record of the pair);
responses add WARC-Payload-Digest (the SHA-1 of the HTTP entity body as stored).

Files roll over at ``max_file_bytes`` (compressed), named ``<prefix>-<UTC timestamp>-<serial>.warc.gz``
as the WARC spec's annex suggests. `curation.readers` and warcio read them; see tests/test_crawl.py.

    writer = WarcWriter(out_dir, info={"http-header-user-agent": "..."})
    writer.write_exchange(url, ip, request_bytes, response_head_bytes, payload)
    paths = writer.close()
"""

from __future__ import annotations

import base64
import datetime as _dt
import gzip
import hashlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

WARC_VERSION = "WARC/1.1"
CONFORMS_TO = "http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"


def sha1_digest(data: bytes) -> str:
    """``sha1:<base32>``: the digest form used by Heritrix, wget and Common Crawl."""
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def warc_date(when: _dt.datetime | None = None) -> str:
    """UTC, second precision (valid in WARC 1.0 and 1.1, and what Common Crawl writes)."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def _clean(value: str) -> str:
    """A WARC header value on one line (folded or injected line breaks would end the header block)."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def encode_record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One uncompressed WARC record: version line, named fields, Content-Length, blank line, block, CRLF CRLF."""
    lines = [WARC_VERSION]
    lines += [f"{name}: {_clean(value)}" for name, value in headers]
    lines.append(f"Content-Length: {len(block)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + block + b"\r\n\r\n"


class WarcWriter:
    """Appends gzip-per-record WARC 1.1 records to rolling files in ``out_dir``. Not thread-safe: one writer thread."""

    def __init__(
        self,
        out_dir: str | Path,
        prefix: str = "lmpipe-crawl",
        max_file_bytes: int = 1 << 30,
        info: Mapping[str, str] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self.info = dict(info or {})
        self.stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        self.paths: list[Path] = []
        self.records = 0
        self._fh: BinaryIO | None = None
        self._warcinfo_id = ""

    # ---- files -------------------------------------------------------------------------------------
    def _open(self) -> BinaryIO:
        if self._fh is not None and self._fh.tell() < self.max_file_bytes:
            return self._fh
        if self._fh is not None:
            self._fh.close()
        path = self.out_dir / f"{self.prefix}-{self.stamp}-{len(self.paths):05d}.warc.gz"
        self._fh = path.open("xb")  # never overwrite an earlier crawl's file
        self.paths.append(path)
        self._warcinfo_id = _record_id()
        fields = {
            "software": "lmpipe-crawler (curation/crawl.py)",
            "format": "WARC File Format 1.1",
            "conformsTo": CONFORMS_TO,
            **self.info,
        }
        block = "".join(f"{k}: {_clean(v)}\r\n" for k, v in fields.items()).encode("utf-8")
        self._append(self._fh, [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", self._warcinfo_id),
            ("WARC-Date", warc_date()),
            ("WARC-Filename", path.name),
            ("WARC-Block-Digest", sha1_digest(block)),
            ("Content-Type", "application/warc-fields"),
        ], block)
        return self._fh

    def _append(self, fh: BinaryIO, headers: list[tuple[str, str]], block: bytes) -> None:
        # One gzip member per record: a reader can seek to any record and a damaged member loses one record.
        fh.write(gzip.compress(encode_record(headers, block), compresslevel=6))
        self.records += 1

    # ---- records -----------------------------------------------------------------------------------
    def write_exchange(
        self,
        url: str,
        ip: str | None,
        request: bytes,
        response_head: bytes,
        payload: bytes,
        date: _dt.datetime | None = None,
    ) -> str:
        """Write a request record and its response record (``response_head`` = status line + headers + CRLF).

        Returns the response record's id.
        """
        fh = self._open()
        when = warc_date(date)
        request_id, response_id = _record_id(), _record_id()
        common = [("WARC-Date", when), ("WARC-Target-URI", url)]
        if ip:
            common.append(("WARC-IP-Address", ip))
        common.append(("WARC-Warcinfo-ID", self._warcinfo_id))
        self._append(fh, [
            ("WARC-Type", "request"), ("WARC-Record-ID", request_id), *common,
            ("WARC-Concurrent-To", response_id),
            ("WARC-Block-Digest", sha1_digest(request)),
            ("Content-Type", "application/http;msgtype=request"),
        ], request)
        block = response_head + payload
        self._append(fh, [
            ("WARC-Type", "response"), ("WARC-Record-ID", response_id), *common,
            ("WARC-Concurrent-To", request_id),
            ("WARC-Block-Digest", sha1_digest(block)),
            ("WARC-Payload-Digest", sha1_digest(payload)),
            ("Content-Type", "application/http;msgtype=response"),
        ], block)
        fh.flush()
        return response_id

    def close(self) -> list[Path]:
        """Close the current file; returns every file written (none when nothing was written)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return list(self.paths)
