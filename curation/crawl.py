"""A polite crawler that writes standard WARC files, so crawled pages and Common Crawl pages take one path.

Run it from the command line, or as the DAG's optional ``crawl`` stage whose WARC feeds ``ingest``:

    lmpipe crawl --seeds seeds.txt --out crawl/ [--max-pages 100] [--depth 2] [--same-site] [--allow-private]
    lmpipe run corpus --set crawl.seeds_file=seeds.txt      # crawl, then ingest the WARC with the other inputs

In code: ``run_crawl(seed_urls, out_dir, CrawlConfig(...)) -> stats``. ``out_dir`` receives
``lmpipe-crawl-<UTC time>-00000.warc.gz`` (request + response records, WARC 1.1, gzip per record) and
``crawl-log.jsonl`` (one line per URL: outcome, status, drop reason).

Policies (each drop is counted by reason in ``stats["dropped"]`` and logged):

* Schemes: only http and https (``scheme``). Addresses: the host is resolved and *every* address must be public
  (no private, loopback, link-local, multicast, reserved, CGNAT) unless ``allow_private`` or the address is in
  ``allow_networks`` (``private_address``; a name that does not resolve: ``dns``); the connection goes to the
  checked address, so a DNS answer cannot change between check and connect. Redirects are new frontier entries
  (same depth, at most ``max_redirects`` hops, ``too_many_redirects``), so every hop passes every check again.
* robots.txt (RFC 9309): fetched once per origin with our user agent; groups matched on the product token
  (``lmpipe-crawler``) else ``*``; the longest matching rule wins, Allow on a tie; ``*`` and ``$`` wildcards.
  2xx: obeyed (``robots``). 4xx: no rules. 5xx, 429, timeouts, network errors: the origin is treated as fully
  disallowed (RFC 9309 2.3.1.4; ``robots_unavailable``). A file that does not parse (binary, an HTML page, no
  directive on any line) counts as ``robots.invalid`` and, like RFC 9309's "ignore unrecognised lines",
  means no rules. Only the first 500 KiB are read (the RFC's minimum). ``Crawl-delay`` raises the per-host
  delay, capped at ``max_crawl_delay``.
* Politeness: at most ``per_host_concurrency`` requests to a host at once, ``per_host_delay`` seconds between
  the end of one and the start of the next; ``concurrency`` worker threads overall.
* Retries: 429, the transient 5xx (500, 502-504, 507-509, 520-524; not 501/505/511), socket timeouts and
  connection errors are retried ``retries`` times after ``backoff_base * 2**attempt`` seconds (at most
  ``backoff_max``), or ``Retry-After`` when it is longer; a Retry-After beyond ``max_retry_after`` gives up at
  once. The final failure is the reason (``status_503``, ``timeout``, ``connection_error``). A page still
  loading after ``page_timeout`` seconds is cut off (``page_timeout``) and not retried: it would cost the same
  again. Nor are ``tls_error`` (certificate or handshake) and ``bad_response`` (malformed status line or
  headers).
* Size and type: a page over ``max_bytes`` is dropped without reading further (``too_large``); with
  ``html_only`` a 2xx answer whose Content-Type is not HTML is dropped before its body is read (``not_html``).
  ``<meta name="robots">`` ``noindex`` drops the page (``noindex``), ``nofollow`` (meta or ``rel``) skips links.
  An empty body (``empty_body``) or one with NUL bytes in its first KiB (``binary``) is not written.
* Frontier: URLs are normalised (see `normalize_url`), each is fetched at most once, breadth-first by depth.
  Links deeper than ``max_depth`` count once each as ``depth``; URLs left when ``max_pages`` requests are used
  count as ``budget``; with ``same_site`` links outside the seeds' sites count as ``off_site``.

HTTP is the standard library's ``http.client`` (no connection reuse: one request per connection, Connection:
close; ``Accept-Encoding: identity`` so ``max_bytes`` limits what is stored). Response bodies are stored
de-chunked: as Common Crawl does, a ``Transfer-Encoding`` header is renamed ``X-Crawler-Transfer-Encoding`` and
Content-Length is set to the stored length, so every WARC reader gets the same payload.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import email.utils
import http.client
import ipaddress
import json
import re
import socket
import ssl
import string
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from curation.warc_writer import WarcWriter

DEFAULT_USER_AGENT = "lmpipe-crawler/0.1 (+https://github.com/lmpipe/lmpipe; polite research crawler)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five consecutive redirects
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524})
DEFAULT_PORTS = {"http": 80, "https": 443}


class CrawlConfig(BaseModel):
    """Crawl seed URLs politely into WARC files (the optional ``crawl`` stage and ``lmpipe crawl``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: list[str] = Field(
        default_factory=list, description="Seed URLs. The DAG's crawl stage runs only when seeds or seeds_file is set."
    )
    seeds_file: str | None = Field(
        None, description="A file of seed URLs, one per line ('#' starts a comment); added to seeds."
    )
    user_agent: str = Field(
        DEFAULT_USER_AGENT,
        description="User-Agent header; its first token (before '/') is the name matched in robots.txt groups.",
    )
    max_pages: int = Field(100, ge=1, description="Page budget: at most this many page URLs are requested.")
    max_depth: int = Field(2, ge=0, description="Link depth: seeds are depth 0, their links depth 1, …")
    same_site: bool = Field(
        False, description="Follow only links on a seed's site (host without 'www.', or a subdomain).")
    allow_private: bool = Field(
        False, description="Allow private, loopback and link-local addresses (off: such hosts are refused)."
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDR networks allowed even when allow_private is off (e.g. an internal mirror, 127.0.0.1/32).",
    )
    html_only: bool = Field(True, description="Keep only text/html and application/xhtml+xml responses.")
    max_bytes: int = Field(5_000_000, ge=1024, description="Maximum page size in bytes (larger: dropped as too_large).")
    concurrency: int = Field(8, ge=1, description="Worker threads (requests in flight overall).")
    per_host_concurrency: int = Field(1, ge=1, description="Requests in flight to one host at most.")
    per_host_delay: float = Field(1.0, ge=0.0, description="Seconds between two requests to the same host.")
    max_crawl_delay: float = Field(30.0, ge=0.0, description="Cap on a robots.txt Crawl-delay (seconds).")
    connect_timeout: float = Field(10.0, gt=0.0, description="Seconds to open a connection (incl. TLS).")
    read_timeout: float = Field(20.0, gt=0.0, description="Seconds without receiving any byte before giving up.")
    page_timeout: float = Field(60.0, gt=0.0, description="Seconds for one whole request, headers and body.")
    retries: int = Field(2, ge=0, description="Retries after 429, 5xx, timeouts and connection errors.")
    backoff_base: float = Field(1.0, ge=0.0, description="First retry waits this many seconds, doubling each time.")
    backoff_max: float = Field(60.0, ge=0.0, description="Longest backoff wait in seconds.")
    max_retry_after: float = Field(120.0, ge=0.0, description="Give up at once when Retry-After asks for longer (s).")
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed from one URL.")
    max_seconds: float | None = Field(
        None, gt=0.0, description="Stop starting new requests after this many seconds (rest: time_limit)."
    )
    max_file_bytes: int = Field(1 << 30, ge=1 << 20, description="Start a new WARC file past this size.")

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad network
        return value


class Drop(Exception):
    """A URL is not fetched or not kept; ``reason`` is the counted drop reason."""

    def __init__(self, reason: str, requested: bool = False, attempts: int = 0, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requested = requested
        self.attempts = attempts
        self.status = status


# ------------------------------------------------------------------------------------ URL handling

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PATH_SAFE = frozenset("/:@!$&'()*+,;=")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_HEX = frozenset(string.hexdigits)
_PLAIN = re.compile(r"[A-Za-z0-9\-._~/:@!$&'()*+,;=?]*")  # nothing to escape or decode: most URLs


def _normalize_escapes(text: str, safe: frozenset[str]) -> str:
    """Decode escaped unreserved characters, upper-case other escapes, escape what may not appear raw (UTF-8)."""
    if _PLAIN.fullmatch(text) and ("?" in safe or "?" not in text):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and i + 2 < len(text) and text[i + 1] in _HEX and text[i + 2] in _HEX:
            char = chr(int(text[i + 1:i + 3], 16))
            out.append(char if char in _UNRESERVED else "%" + text[i + 1:i + 3].upper())
            i += 3
            continue
        if c in _UNRESERVED or c in safe:
            out.append(c)
        else:  # includes a lone '%', spaces, non-ASCII
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path: '/a/./b/../c' -> '/a/c'."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for seg in segments:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/" + "/".join(out)
    if segments and segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def normalize_url(url: str, base: str | None = None) -> str:
    """The canonical form of a (relative) URL; ``Drop("scheme")`` or ``Drop("bad_url")`` when unusable.

    Lower-case scheme and host (IDNA for non-ASCII hosts, trailing dot removed), default port removed,
    userinfo and fragment removed, dot-segments resolved, percent-escapes normalised (unreserved decoded,
    others upper-case, raw spaces and non-ASCII escaped as UTF-8), empty path -> '/', empty '?' removed.
    The query keeps its order: sorting it would request a URL the page never linked to, and some servers
    answer differently to reordered parameters.
    """
    url = re.sub(r"[\t\r\n]", "", url).strip()  # browsers drop these anywhere in a URL
    try:
        if base is not None:
            url = urljoin(base, url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise Drop("scheme")
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # e.g. a port that is not a number, an unclosed IPv6 bracket
        raise Drop("bad_url") from None
    host = host.rstrip(".")
    if not host:
        raise Drop("bad_url")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    elif not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise Drop("bad_url") from None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path or "/", _PATH_SAFE))
    query = _normalize_escapes(parts.query, _QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def _site(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def load_seeds(path: str | Path) -> list[str]:
    """Seed URLs from a text file: one per line, blank lines and '#' comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"seeds file not found: {path}; pass a text file with one URL per line")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    seeds = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not seeds:
        raise ValueError(f"no seed URLs in {path}; write one http(s) URL per line")
    return seeds


def config_seeds(cfg: CrawlConfig) -> list[str]:
    """``cfg.seeds`` followed by the URLs of ``cfg.seeds_file``."""
    return list(cfg.seeds) + (load_seeds(cfg.seeds_file) if cfg.seeds_file else [])


# --------------------------------------------------------------------------------- address policy


# IPv6 ranges that carry an IPv4 address in their low 32 bits, routed to that IPv4 host by a translator
# (RFC 6052 NAT64 well-known and local-use prefixes; the deprecated IPv4-compatible ::a.b.c.d). Python calls
# 64:ff9b::a00:1 "global", yet a NAT64 gateway delivers it to 10.0.0.1: the embedded address is what counts.
_EMBEDS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: mapped, NAT64, IPv4-compatible, 6to4 or Teredo (client)."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _EMBEDS_IPV4) and int(addr) > 0xFFFF:  # not :: or ::1
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _address_allowed(ip: str, cfg: CrawlConfig) -> bool:
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%", 1)[0])  # no zone id
    if isinstance(addr, ipaddress.IPv6Address):
        addr = _embedded_ipv4(addr) or addr
    if cfg.allow_private:
        return True
    if any(addr in ipaddress.ip_network(net, strict=False) for net in cfg.allow_networks):
        return True
    return addr.is_global and not addr.is_multicast


def resolve_public(host: str, port: int, cfg: CrawlConfig) -> str:
    """Resolve ``host`` and check every address; returns the one to connect to.

    ``Drop("dns")`` when it does not resolve, ``Drop("private_address")`` when any address is not allowed:
    a name with one public and one private address could be made to reach the private one.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Drop("dns") from None
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    if not ips:
        raise Drop("dns")
    if not all(_address_allowed(ip, cfg) for ip in ips):
        raise Drop("private_address")
    return ips[0]


# ------------------------------------------------------------------------------------------ robots

_ROBOTS_KEYS = {"user-agent", "allow", "disallow", "crawl-delay", "sitemap"}


@dataclass
class RobotsRules:
    """The rules of robots.txt that apply to one user agent (RFC 9309)."""

    rules: list[tuple[re.Pattern[str], int, bool]] = field(default_factory=list)  # (pattern, length, allow)
    crawl_delay: float | None = None

    def allowed(self, path_and_query: str) -> bool:
        """Longest matching pattern wins; Allow wins a tie; no match: allowed. /robots.txt is always allowed."""
        if path_and_query == "/robots.txt":
            return True
        best: tuple[int, bool] | None = None
        for pattern, length, allow in self.rules:
            if pattern.match(path_and_query) and (best is None or (length, allow) > best):
                best = (length, allow)
        return best is None or best[1]


def _robots_rule(value: str, allow: bool) -> tuple[re.Pattern[str], int, bool]:
    """(regex, length in octets of the percent-encoded pattern: RFC 9309's "most specific", allow)."""
    value = _normalize_escapes(value, _QUERY_SAFE | {"*", "$"})
    anchored = value.endswith("$")
    body = value[:-1] if anchored else value
    regex = ".*".join(re.escape(part) for part in body.split("*"))
    return re.compile(regex + (r"\Z" if anchored else ""), re.DOTALL), len(value), allow


def parse_robots(text: str, agent: str) -> tuple[RobotsRules, bool]:
    """(rules for ``agent``'s product token, whether the file parsed: a directive, or nothing but comments)."""
    token = agent.split("/", 1)[0].strip().lower()
    groups: list[tuple[list[str], list[tuple[str, bool]], list[float]]] = []
    current: tuple[list[str], list[tuple[str, bool]], list[float]] | None = None
    in_agents = False
    directives = content = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        content += bool(line)
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        key = key.lower().replace(" ", "-").replace("useragent", "user-agent")
        if key not in _ROBOTS_KEYS:
            continue
        directives += 1
        if key == "user-agent":
            if current is None or not in_agents:
                current = ([], [], [])
                groups.append(current)
            current[0].append(value.split("/", 1)[0].strip().lower())
            in_agents = True
            continue
        in_agents = False
        if current is None or key == "sitemap":
            continue  # rules before any user-agent line belong to no group
        if key in ("allow", "disallow") and value:  # an empty Disallow allows everything: no rule
            current[1].append((value, key == "allow"))
        elif key == "crawl-delay":
            try:
                current[2].append(float(value))
            except ValueError:
                pass
    mine = [g for g in groups if token in g[0]] or [g for g in groups if "*" in g[0]]
    rules = RobotsRules()
    for _, group_rules, delays in mine:
        rules.rules += [_robots_rule(v, allow) for v, allow in group_rules]
        if delays:
            rules.crawl_delay = max(delays + ([rules.crawl_delay] if rules.crawl_delay is not None else []))
    parsed = directives > 0 or content == 0
    return rules, parsed


@dataclass
class _RobotsEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    rules: RobotsRules | None = None
    refused: str | None = None  # the page drop reason when robots.txt could not be fetched


# ------------------------------------------------------------------------------------------- HTTP


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an already checked address (no second DNS lookup), sends Host for the name."""

    def __init__(self, host: str, port: int, ip: str, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.ip, self.read_timeout = ip, read_timeout
        self.raw_sock: socket.socket | None = None

    def connect(self) -> None:
        self.sock = self.raw_sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock.settimeout(self.read_timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, connect_timeout: float, read_timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=context)
        self.ip, self.read_timeout, self.ssl_context = ip, read_timeout, context
        self.raw_sock: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = self.raw_sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        self.sock.settimeout(self.read_timeout)


@dataclass
class Response:
    """One HTTP exchange as stored: request bytes, status, headers as stored, payload."""

    url: str
    ip: str
    status: int
    request: bytes
    head: bytes  # status line + headers (Transfer-Encoding renamed, Content-Length = stored length) + CRLF
    headers: dict[str, str]  # lower-case name -> last value, for decisions
    payload: bytes
    attempts: int
    truncated: bool = False


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())


def _mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class _Http:
    """GET with retries/backoff, address checks, time and size limits (used by worker threads)."""

    def __init__(self, cfg: CrawlConfig, counters: Counter[str], lock: threading.Lock) -> None:
        self.cfg = cfg
        self.counters = counters
        self.lock = lock
        self.ssl_context = ssl.create_default_context()

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] += n

    def get(self, url: str, *, html_only: bool, max_bytes: int, truncate: bool) -> Response:
        """The final response (any status) after retries; ``Drop`` for network failures and limits."""
        cfg = self.cfg
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        ip = resolve_public(host, port, cfg)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                resp = self._exchange(url, ip, html_only=html_only, max_bytes=max_bytes, truncate=truncate)
                resp.attempts = attempt
                if resp.status not in RETRY_STATUSES:
                    return resp
                failure: Drop | Response = resp
                retry_after = _retry_after(resp.headers.get("retry-after"))
            except Drop as drop:
                drop.attempts, drop.requested = attempt, True
                if drop.reason not in ("timeout", "connection_error"):
                    raise
                failure = drop
            if attempt > cfg.retries or (retry_after is not None and retry_after > cfg.max_retry_after):
                if isinstance(failure, Drop):
                    raise failure
                return failure
            wait_s = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempt - 1))
            wait_s = max(wait_s, retry_after or 0.0)
            self.count("retries")
            time.sleep(wait_s)

    def _exchange(self, url: str, ip: str, *, html_only: bool, max_bytes: int, truncate: bool) -> Response:
        cfg = self.cfg
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        host = (parts.hostname or "").strip("[]")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPSConnection(host, port, ip, cfg.connect_timeout, cfg.read_timeout, self.ssl_context)
        else:
            conn = _PinnedHTTPConnection(host, port, ip, cfg.connect_timeout, cfg.read_timeout)
        accept = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1" if html_only else "*/*"
        headers = [("Host", parts.netloc), ("User-Agent", cfg.user_agent), ("Accept", accept),
                   ("Accept-Encoding", "identity"), ("Connection", "close")]
        request = (f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()
        # A watchdog closes the socket when the whole request overruns page_timeout: socket timeouts alone
        # cannot stop a server that sends one byte every few seconds for ever.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            sock = conn.raw_sock  # type: ignore[attr-defined]
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(cfg.page_timeout, expire)
        timer.daemon = True
        timer.start()
        self.count("requests")
        try:
            conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            status = resp.status
            items = [(k, v) for k, v in resp.msg.items()]
            lower = {k.lower(): v for k, v in items}
            declared = lower.get("content-length", "")
            body = b""
            truncated = False
            wants_body = 200 <= status < 400
            if 200 <= status < 300 and html_only and _mime(lower.get("content-type", "text/html")) not in HTML_TYPES:
                raise Drop("not_html", requested=True, status=status)
            if wants_body:
                if declared.isdigit() and int(declared) > max_bytes and not truncate:
                    raise Drop("too_large", requested=True, status=status)
                chunks: list[bytes] = []
                size = 0
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        if not truncate:
                            raise Drop("too_large", requested=True, status=status)
                        truncated = True
                        break
                body = b"".join(chunks)[:max_bytes]
                if expired.is_set():
                    raise Drop("page_timeout", requested=True, status=status)
                if declared.isdigit() and len(body) < int(declared) and not truncated:
                    raise Drop("connection_error", requested=True, status=status)  # closed mid-body
            if 200 <= status < 300 and html_only and "content-type" not in lower \
                    and b"<html" not in body[:2048].lower():
                raise Drop("not_html", requested=True, status=status)  # no Content-Type: sniff like a browser
        except Drop:
            raise
        except (socket.timeout, TimeoutError):
            raise Drop("page_timeout" if expired.is_set() else "timeout", requested=True) from None
        except (ConnectionError, http.client.IncompleteRead):  # refused, reset, closed early: worth a retry
            raise Drop("page_timeout" if expired.is_set() else "connection_error", requested=True) from None
        except ssl.SSLError:  # bad certificate or handshake: the same next time
            raise Drop("tls_error", requested=True) from None
        except (http.client.HTTPException, ValueError):  # malformed status line or headers, > 100 headers
            raise Drop("page_timeout" if expired.is_set() else "bad_response", requested=True) from None
        except OSError:
            raise Drop("page_timeout" if expired.is_set() else "connection_error", requested=True) from None
        finally:
            timer.cancel()
            conn.close()
        self.count("bytes_received", len(body))
        head = self._stored_head(resp.version, status, resp.reason, items, len(body))
        return Response(url=url, ip=ip, status=status, request=request, head=head, headers=lower, payload=body,
                        attempts=1, truncated=truncated)

    @staticmethod
    def _stored_head(version: int, status: int, reason: str, items: list[tuple[str, str]], length: int) -> bytes:
        """Status line and headers as stored next to the de-chunked payload (Common Crawl's X-Crawler- names)."""
        lines = [f"HTTP/{'1.0' if version == 10 else '1.1'} {status} {reason}"]
        for k, v in items:
            v = " ".join(v.split())
            if k.lower() in ("transfer-encoding", "content-length"):
                lines.append(f"X-Crawler-{k}: {v}")
            else:
                lines.append(f"{k}: {v}")
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


# ------------------------------------------------------------------------------------------ links


def extract_links(html: bytes, url: str, content_type: str = "") -> tuple[str, list[str], bool, bool]:
    """(base URL, raw hrefs of <a>/<area> without rel=nofollow, page says nofollow, page says noindex).

    The hrefs are resolved against the base by `normalize_url`: one join per link (profiled: joins and
    escapes were half of the coordinator's time on link-heavy pages).
    """
    import lxml.etree
    import lxml.html

    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    encoding = None
    if match:
        try:
            encoding = codecs.lookup(match.group(1)).name
        except LookupError:
            encoding = None
    try:
        doc = lxml.html.document_fromstring(html, parser=lxml.html.HTMLParser(encoding=encoding))
    except (lxml.etree.ParserError, ValueError, LookupError):
        return url, [], False, False
    nofollow = noindex = False
    for meta in doc.iter("meta"):
        if (meta.get("name") or "").strip().lower() == "robots":
            words = {w.strip() for w in (meta.get("content") or "").lower().split(",")}
            nofollow |= bool(words & {"nofollow", "none"})
            noindex |= bool(words & {"noindex", "none"})
    if nofollow:
        return url, [], True, noindex
    base = url
    for tag in doc.iter("base"):
        if tag.get("href"):
            try:
                base = urljoin(url, tag.get("href").strip())
            except ValueError:
                pass
            break
    links = [el.get("href") for el in doc.iter("a", "area")
             if el.get("href") is not None and "nofollow" not in (el.get("rel") or "").lower().split()]
    return base, links, False, noindex


# ---------------------------------------------------------------------------------------- crawler


@dataclass
class _Page:
    """What a worker hands back for one frontier URL."""

    url: str
    depth: int
    hops: int
    response: Response | None = None
    reason: str | None = None
    requested: bool = False
    attempts: int = 0
    status: int | None = None


@dataclass(order=True)
class _Item:
    depth: int
    seq: int
    url: str = field(compare=False)
    hops: int = field(compare=False, default=0)


class Crawler:
    """One crawl: the frontier and per-host scheduling run in the calling thread, fetches in worker threads."""

    def __init__(self, cfg: CrawlConfig, out_dir: str | Path) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.http = _Http(cfg, self.counters, self.lock)
        self.dropped: Counter[str] = Counter()
        self.robots_status: Counter[str] = Counter()
        self.robots: dict[str, _RobotsEntry] = {}
        self.crawl_delay: dict[str, float] = {}
        self.seen: set[str] = set()
        self.too_deep: set[str] = set()
        self.queues: dict[str, deque[_Item]] = {}
        self.next_time: dict[str, float] = {}
        self.inflight: Counter[str] = Counter()
        self.sites: set[str] = set()
        self.seq = 0
        self.pages_requested = 0
        self.written = 0
        self.redirects = 0
        self.log_lines: list[dict[str, Any]] = []

    # ---- frontier ----------------------------------------------------------------------------------
    def _drop(self, url: str, reason: str, **extra: Any) -> None:
        self.dropped[reason] += 1
        self.log_lines.append({"url": url, "outcome": "dropped", "reason": reason, **extra})

    def add(self, raw: str, depth: int, base: str | None = None, hops: int = 0) -> None:
        """Put a (relative) URL on the frontier unless it was seen, is too deep, off-site or unusable."""
        try:
            url = normalize_url(raw, base)
        except Drop as drop:
            key = raw.strip()
            if depth > self.cfg.max_depth:  # beyond the crawl: one 'depth' count, whatever else is wrong with it
                if key not in self.seen:
                    self.too_deep.add(key)
            elif key not in self.seen:
                self.seen.add(key)
                self.too_deep.discard(key)
                self._drop(key, drop.reason, depth=depth)
            return
        if url in self.seen:
            return
        if depth > self.cfg.max_depth:
            self.too_deep.add(url)  # counted at the end: a shorter path to it may still turn up
            return
        self.seen.add(url)
        self.too_deep.discard(url)
        host = urlsplit(url).hostname or ""
        if self.cfg.same_site and self.sites and not any(
                _site(host) == s or host.endswith("." + s) for s in self.sites):
            self._drop(url, "off_site", depth=depth)
            return
        self.seq += 1
        self.queues.setdefault(host, deque()).append(_Item(depth, self.seq, url, hops))

    def _ready_host(self, now: float) -> str | None:
        best: tuple[_Item, str] | None = None
        for host, queue in self.queues.items():
            if queue and self.inflight[host] < self.cfg.per_host_concurrency and self.next_time.get(host, 0.0) <= now:
                if best is None or queue[0] < best[0]:
                    best = (queue[0], host)
        return best[1] if best else None

    def _delay(self, host: str) -> float:
        return max(self.cfg.per_host_delay, min(self.crawl_delay.get(host, 0.0), self.cfg.max_crawl_delay))

    def _queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self, seeds: Sequence[str]) -> dict[str, Any]:
        start = time.monotonic()
        for seed in seeds:
            try:
                self.sites.add(_site(urlsplit(normalize_url(seed)).hostname or ""))
            except Drop:
                pass
        for seed in seeds:
            self.add(seed, 0)
        info = {"robots": "obey (RFC 9309)", "http-header-user-agent": self.cfg.user_agent,
                "isPartOf": "lmpipe crawl", "description": f"seeds: {len(seeds)}"}
        writer = WarcWriter(self.out_dir, info=info, max_file_bytes=self.cfg.max_file_bytes)
        futures: dict[Future[_Page], str] = {}
        stopped_for_time = False
        try:
            with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="crawl") as pool:
                while True:
                    now = time.monotonic()
                    if self.cfg.max_seconds is not None and now - start > self.cfg.max_seconds:
                        stopped_for_time = True
                    while (len(futures) < self.cfg.concurrency and self.pages_requested < self.cfg.max_pages
                           and not stopped_for_time):
                        host = self._ready_host(now)
                        if host is None:
                            break
                        item = self.queues[host].popleft()
                        if not self.queues[host]:
                            del self.queues[host]  # keeps the per-dispatch scan to hosts with work
                        self.inflight[host] += 1
                        self.pages_requested += 1  # given back when no request was made (robots, refused)
                        self.next_time[host] = now + self._delay(host)
                        futures[pool.submit(self._fetch, item)] = host
                    if not futures:
                        if (stopped_for_time or self.pages_requested >= self.cfg.max_pages
                                or not self._queued()):
                            break
                        waits = [t for h, t in self.next_time.items() if self.queues.get(h)]
                        time.sleep(max(0.0, min(waits, default=now) - now) + 0.001)
                        continue
                    # Wake up for the next host whose delay ends, but only if another request could start.
                    can_start = (len(futures) < self.cfg.concurrency and not stopped_for_time
                                 and self.pages_requested < self.cfg.max_pages)
                    pending_hosts = [t for h, t in self.next_time.items() if t > now and self.queues.get(h)
                                     and self.inflight[h] < self.cfg.per_host_concurrency]
                    timeout = (min(pending_hosts) - now + 0.001) if can_start and pending_hosts else None
                    if self.cfg.max_seconds is not None and not stopped_for_time:
                        left = self.cfg.max_seconds - (now - start)
                        timeout = left if timeout is None else min(timeout, left)
                    done, _ = wait(list(futures), timeout=timeout, return_when=FIRST_COMPLETED)
                    for fut in done:
                        host = futures.pop(fut)
                        self.inflight[host] -= 1
                        self.next_time[host] = max(self.next_time.get(host, 0.0), time.monotonic() + self._delay(host))
                        self._handle(fut.result(), writer)
        finally:
            files = writer.close()
        left = self._queued()
        if left:
            reason = "time_limit" if stopped_for_time else "budget"
            for queue in self.queues.values():
                for item in queue:
                    self._drop(item.url, reason, depth=item.depth)
        if self.too_deep:
            self.dropped["depth"] += len(self.too_deep)
            self.log_lines += [{"url": u, "outcome": "dropped", "reason": "depth"} for u in sorted(self.too_deep)]
        with (self.out_dir / "crawl-log.jsonl").open("w", encoding="utf-8") as fh:
            for line in self.log_lines:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        return {
            "seeds": len(seeds),
            "pages_requested": self.pages_requested,
            "docs_out": self.written,
            "written": self.written,
            "redirects": self.redirects,
            "requests": self.counters["requests"],
            "retries": self.counters["retries"],
            "bytes_received": self.counters["bytes_received"],
            "dropped": dict(sorted(self.dropped.items())),
            "robots": dict(sorted(self.robots_status.items())),
            "warc_files": [p.name for p in files],
            "seconds": round(time.monotonic() - start, 3),
        }

    # ---- worker side -------------------------------------------------------------------------------
    def _fetch(self, item: _Item) -> _Page:
        page = _Page(item.url, item.depth, item.hops)
        try:
            self._check_robots(item.url)
            resp = self.http.get(item.url, html_only=self.cfg.html_only, max_bytes=self.cfg.max_bytes, truncate=False)
        except Drop as drop:
            page.reason, page.requested = drop.reason, drop.requested
            page.attempts, page.status = drop.attempts, drop.status
            return page
        except Exception as exc:  # a bug or an exotic failure costs this URL, never the crawl's WARC
            page.reason, page.requested = f"error:{type(exc).__name__}", True
            return page
        page.response, page.requested, page.attempts, page.status = resp, True, resp.attempts, resp.status
        return page

    def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            entry = self.robots.setdefault(origin, _RobotsEntry())
        with entry.lock:  # one fetch per origin; other workers for it wait here
            if not entry.done:
                self._fetch_robots(origin, parts.hostname or "", entry)
                entry.done = True
        if entry.refused:
            raise Drop(entry.refused)
        assert entry.rules is not None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not entry.rules.allowed(target):
            raise Drop("robots")

    def _fetch_robots(self, origin: str, host: str, entry: _RobotsEntry) -> None:
        url = origin + "/robots.txt"
        status = "unavailable"
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            try:
                resp = self.http.get(url, html_only=False, max_bytes=ROBOTS_MAX_BYTES, truncate=True)
            except Drop as drop:
                if drop.reason in ("private_address", "dns", "scheme", "bad_url"):
                    entry.refused = drop.reason  # the page itself would be refused for the same reason
                    status = "refused"
                break
            if 300 <= resp.status < 400 and resp.headers.get("location"):
                try:
                    url = normalize_url(resp.headers["location"], url)
                except Drop:
                    status = "missing"  # an unusable redirect target: like a 4xx (RFC 9309 2.3.1.2)
                    break
                continue
            if 200 <= resp.status < 300:
                text = resp.payload.decode("utf-8", errors="replace")
                rules, parsed = parse_robots(text, self.cfg.user_agent)
                if b"\x00" in resp.payload[:4096]:
                    rules, parsed = RobotsRules(), False  # binary: no rules from it
                entry.rules = rules
                status = "ok" if parsed else "invalid"
                if rules.crawl_delay is not None:
                    with self.lock:
                        self.crawl_delay[host] = rules.crawl_delay
            elif 300 <= resp.status < 500 and resp.status != 429:  # 4xx, or a redirect without Location
                status = "missing"
            break  # 429/5xx after retries: unavailable
        else:
            status = "missing"  # more than 5 redirects: RFC 9309 says treat as unavailable (4xx), i.e. no rules
        if status in ("missing", "invalid") and entry.rules is None:
            entry.rules = RobotsRules()
        if status == "unavailable":
            entry.refused = "robots_unavailable"
        with self.lock:
            self.robots_status[status] += 1
            self.log_lines.append({"url": origin + "/robots.txt", "outcome": "robots", "status": status})

    # ---- coordinator side --------------------------------------------------------------------------
    def _handle(self, page: _Page, writer: WarcWriter) -> None:
        if not page.requested:
            self.pages_requested -= 1
        if page.reason:
            self._drop(page.url, page.reason, depth=page.depth, status=page.status, attempts=page.attempts)
            return
        resp = page.response
        assert resp is not None
        entry = {"url": page.url, "depth": page.depth, "status": resp.status, "attempts": resp.attempts}
        if 300 <= resp.status < 400 and resp.headers.get("location"):
            writer.write_exchange(page.url, resp.ip, resp.request, resp.head, resp.payload)
            self.redirects += 1
            location = resp.headers["location"]
            self.log_lines.append({**entry, "outcome": "redirect", "location": location})
            if page.hops >= self.cfg.max_redirects:
                self._drop(location, "too_many_redirects", depth=page.depth)
            else:
                self.add(location, page.depth, base=page.url, hops=page.hops + 1)
            return
        if not 200 <= resp.status < 300:
            self._drop(page.url, f"status_{resp.status}", depth=page.depth, attempts=resp.attempts)
            return
        if not resp.payload.strip():
            self._drop(page.url, "empty_body", depth=page.depth)
            return
        if b"\x00" in resp.payload[:1024]:  # NUL never occurs in HTML text: an image or archive labelled text/html
            self._drop(page.url, "binary", depth=page.depth)
            return
        base, links, _, noindex = extract_links(resp.payload, page.url, resp.headers.get("content-type", ""))
        if noindex:
            self._drop(page.url, "noindex", depth=page.depth)
        else:
            writer.write_exchange(page.url, resp.ip, resp.request, resp.head, resp.payload)
            self.written += 1
            self.log_lines.append({**entry, "outcome": "written", "bytes": len(resp.payload)})
        for link in links:
            self.add(link, page.depth + 1, base=base)


def run_crawl(seeds: Iterable[str], out_dir: str | Path, cfg: CrawlConfig) -> dict[str, Any]:
    """Crawl from ``seeds`` into ``out_dir`` (WARC files + crawl-log.jsonl); returns JSON-serialisable stats.

    Stats: seeds, pages_requested, written (= docs_out), redirects, requests (incl. robots.txt and retries),
    retries, bytes_received, dropped (reason -> count), robots (origin status -> count), warc_files, seconds.
    """
    seeds = [s.strip() for s in seeds if s.strip()]
    if not seeds:
        raise ValueError("no seed URLs: set crawl.seeds or crawl.seeds_file (one http(s) URL per line)")
    return Crawler(cfg, out_dir).run(seeds)
