"""HTML -> main text (and title) with trafilatura, including charset decoding of raw bytes.

Decoding order for bytes (`decode_html`):
1. a byte-order mark;
2. strict UTF-8: a non-ASCII byte string that is valid UTF-8 is almost never another encoding, and this
   rescues pages whose `<meta>` lies (several GNE news pages say gb2312 but are UTF-8);
3. the HTTP Content-Type charset, then the `<meta charset>` / `http-equiv` charset, each decoded strictly;
   gb2312 and gbk are read as gb18030, their superset (real GBK pages use characters outside gb2312);
4. charset_normalizer's best guess, then UTF-8 with replacement characters as the last resort.
"""

from __future__ import annotations

import codecs
import logging
import re

import charset_normalizer
import trafilatura

# trafilatura logs every page it finds empty at WARNING/ERROR; the ingest stats count those instead.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
# Labels browsers treat as a superset encoding (WHATWG Encoding Standard); Python's codecs are strict.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "euc-kr": "cp949",
}


def _normalise_charset(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(data: bytes, charset: str | None = None) -> str:
    """Decode raw HTML bytes to str (see the module docstring for the order of evidence)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    meta = _META_CHARSET.search(data[:4096])  # the meta tag must be in the first 1024 bytes; be lenient
    candidates = [charset, meta.group(1).decode("ascii", "ignore") if meta else None]
    for label in candidates:
        encoding = _normalise_charset(label)
        if encoding is None or encoding == "utf-8":
            continue
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    guess = charset_normalizer.from_bytes(data[:65536]).best()
    if guess is not None and guess.encoding:
        encoding = _normalise_charset(guess.encoding) or guess.encoding
        return data.decode(encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


def extract(html: str | bytes, url: str | None = None, charset: str | None = None) -> tuple[str, str]:
    """Return (main text, title) of a page; ('', '') when trafilatura finds no main text.

    Settings: trafilatura's balanced default (neither favor_precision nor favor_recall, which in its own
    evaluation gives the best F1), comments excluded (mostly short, noisy user text), tables kept.
    """
    if isinstance(html, bytes):
        html = decode_html(html, charset)
    if not html.strip():
        return "", ""
    try:
        document = trafilatura.bare_extraction(
            html,
            url=url,
            include_comments=False,
            include_tables=True,
            with_metadata=True,
            deduplicate=False,
        )
    except Exception:  # trafilatura/lxml can fail on pathological markup: a bad record, not a crash
        return "", ""
    if document is None:
        return "", ""
    text = (document.text or "").strip()
    title = (document.title or "").strip()
    return (text, title) if text else ("", "")


def extract_text(html: str | bytes, url: str | None = None, charset: str | None = None) -> str:
    """The main text of a page ('' when there is none); see `extract`."""
    return extract(html, url, charset)[0]
