"""The crawler against a real HTTP server on 127.0.0.1 (http.server in a thread).

The site has a robots.txt that forbids /private/, a redirect, a 404, a 503 that recovers, a 503 whose
Retry-After is too long, a page slower than the read timeout, one that never finishes loading, pages larger
than the size limit (declared and undeclared length), a non-HTML type, an empty page, an image labelled
text/html, a link chain deeper than max_depth, duplicate links (fragment, dot-segment, escaped letter) and
non-http links. Its articles are real pages from ../shared/data/html (skipped cleanly when absent) or, in the
variant every clone runs, hand-written pages.
Timeouts are tiny (0.5 s); nothing here asserts a speed.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from curation.config import IngestConfig
from curation.crawl import DEFAULT_USER_AGENT, CrawlConfig, Drop, normalize_url, parse_robots, run_crawl
from curation.readers import ReadStats, read_records
from curation.stages import run_ingest
from shared_data import DATA, needs  # noqa: E402  (tests/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]

HAND_WRITTEN = {
    "/articles/one.html": "<html><head><title>One</title></head><body><article><h1>Tide pools</h1>"
    + "<p>Tide pools hold anemones, crabs and small fish that wait for the sea to return twice a day.</p>" * 3
    + "</article></body></html>",
    "/articles/two.html": "<html><head><title>Two</title></head><body><article><h1>Bread</h1>"
    + "<p>Sourdough bread rises slowly because wild yeast and lactic bacteria share the same dough.</p>" * 3
    + "</article></body></html>",
    "/articles/three.html": "<html><head><meta charset='gb2312'><title>三</title></head><body><article>"
    + "<p>长江是中国最长的河流，全长约六千三百公里，流经十一个省级行政区，最后注入东海。</p>" * 3
    + "</article></body></html>",
}
PHRASES = {"/articles/one.html": "Tide pools hold anemones", "/articles/two.html": "Sourdough bread rises slowly",
           "/articles/three.html": "长江是中国最长的河流"}
# Real pages (readability's test corpus): en (utf-8), en (utf-8), zh (gb2312).
SHARED_PAGES = {"/articles/one.html": "ars-1", "/articles/two.html": "medium-1", "/articles/three.html": "qq"}
MAX_BYTES = 400_000

INDEX = """<html><head><title>Index</title></head><body>
<a href="/articles/">articles</a>
<a href="/private/secret.html">secret</a>
<a href="/old">moved</a>
<a href="/missing.html">missing</a>
<a href="/flaky.html">flaky</a>
<a href="/busy.html">busy</a>
<a href="/slow.html">slow</a>
<a href="/never.html">never</a>
<a href="/big.html">big</a>
<a href="/big-undeclared.html">big undeclared</a>
<a href="/data.json">data</a>
<a href="/empty.html">empty</a>
<a href="/image.html">an image labelled text/html</a>
<a href="/deep1.html">deep</a>
<a href="mailto:someone@example.org">mail</a>
<a href="ftp://example.org/file">ftp</a>
<a href="javascript:void(0)">js</a>
<a href="/private/other.html" rel="nofollow">nofollow</a>
</body></html>"""

ARTICLES = """<html><body><a href="one.html">1</a> <a href="./two.html">2</a> <a href="three.html">3</a>
<a href="/">home</a> <a href="one.html#comments">same page</a> <a href="/x/../articles/./two.html">dup</a>
<a href="/%61rticles/three.html">same again</a></body></html>"""


def _page(text: str, link: str = "") -> bytes:
    return f"<html><body><p>{text}</p>{link}</body></html>".encode()


class Site:
    """Routes and request log of the test server."""

    def __init__(self, articles: dict[str, bytes], robots: bytes = b"User-agent: *\nDisallow: /private/\n",
                 robots_status: int = 200, extra: dict | None = None) -> None:
        self.articles = articles
        self.extra = extra or {}  # path prefix -> fn(handler, path, hit): routes one test adds
        self.robots, self.robots_status = robots, robots_status
        self.requests: list[tuple[str, float]] = []
        self.hits: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.port = 0


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
                 headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path
            with site.lock:
                site.requests.append((path, time.monotonic()))
                site.hits[path] += 1
                site.agents.add(self.headers.get("User-Agent", ""))
                hit = site.hits[path]
                site.active += 1
                site.max_active = max(site.max_active, site.active)
            try:
                self.route(path, hit)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with site.lock:
                    site.active -= 1

        def route(self, path: str, hit: int) -> None:
            port = site.port
            extra = next((fn for prefix, fn in site.extra.items() if path.startswith(prefix)), None)
            if extra is not None:
                extra(self, path, hit)
            elif path == "/robots.txt":
                self.send(site.robots_status, site.robots, "text/plain")
            elif path == "/":
                self.send(200, INDEX.encode())
            elif path == "/articles/":
                self.send(200, ARTICLES.encode())
            elif path in site.articles:
                charset = "gb2312" if path.endswith("three.html") else "utf-8"
                self.send(200, site.articles[path], f"text/html; charset={charset}")
            elif path == "/old":
                self.send(301, b"", headers={"Location": "/new.html"})
            elif path == "/new.html":
                self.send(200, _page("The page that moved here."))
            elif path == "/flaky.html":  # one 503, then fine
                if hit == 1:
                    self.send(503, b"busy", headers={"Retry-After": "0"})
                else:
                    self.send(200, _page("Recovered after one failure."))
            elif path == "/busy.html":  # asks for an hour: not worth waiting for
                self.send(503, b"busy", headers={"Retry-After": "3600"})
            elif path == "/slow.html":
                time.sleep(1.5)  # read_timeout is 0.5 s
                self.send(200, _page("too late"))
            elif path == "/never.html":  # trickles bytes for longer than page_timeout
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(40):
                    self.wfile.write(b"<p>.</p>")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif path == "/big.html":
                self.send(200, b"<html><body>" + b"x" * (MAX_BYTES + 1000) + b"</body></html>")
            elif path == "/big-undeclared.html":  # no Content-Length: the body ends when the connection closes
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(MAX_BYTES // 10_000 + 5):
                    self.wfile.write(b"<p>" + b"y" * 9993 + b"</p>")
            elif path == "/empty.html":
                self.send(200, b"")
            elif path == "/image.html":
                self.send(200, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
            elif path == "/data.json":
                self.send(200, b'{"not": "html"}', "application/json")
            elif path == "/deep1.html":
                self.send(200, _page("Depth one.", '<a href="/deep2.html">2</a>'))
            elif path == "/deep2.html":
                self.send(200, _page("Depth two.", '<a href="/deep3.html">3</a> <a href="mailto:x@y.org">m</a>'))
            elif path == "/to-ten":
                self.send(302, b"", headers={"Location": "http://10.1.2.3/internal"})
            elif path == "/to-loopback":
                self.send(302, b"", headers={"Location": f"http://127.0.0.2:{port}/"})
            elif path == "/to-metadata":
                self.send(302, b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"})
            else:
                self.send(404, b"not found")

    return Handler


class Server:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(site))
        self.httpd.daemon_threads = True
        site.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{site.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def hand_written() -> dict[str, bytes]:
    return {p: h.encode("gb2312" if p.endswith("three.html") else "utf-8") for p, h in HAND_WRITTEN.items()}


def shared_pages() -> dict[str, bytes]:
    root = needs(DATA / "html" / "readability" / "test-pages")
    return {p: gzip.decompress((root / case / "source.html.gz").read_bytes()) for p, case in SHARED_PAGES.items()}


def config(**kw: object) -> CrawlConfig:
    base = dict(allow_private=True, per_host_delay=0.0, concurrency=4, per_host_concurrency=2, max_depth=2,
                max_pages=100, connect_timeout=0.5, read_timeout=0.5, page_timeout=1.5, retries=1,
                backoff_base=0.01, max_retry_after=5.0, max_bytes=MAX_BYTES)
    base.update(kw)
    return CrawlConfig(**base)


def log_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "crawl-log.jsonl").read_text().splitlines()]


def warc_records(out: Path) -> list[tuple[str, str, int | None]]:
    """(type, target URI, HTTP status) of every record, read with warcio with digest checks that raise."""
    rows = []
    for path in sorted(out.glob("*.warc.gz")):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh, check_digests="raise"):
                rec.content_stream().read()
                status = int(rec.http_headers.get_statuscode()) if rec.rec_type == "response" else None
                rows.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"), status))
    return rows


# The site's crawl outcome, identical for both page sets (only the depth count differs: real pages link out).
FETCHED_OK = {"/", "/articles/", "/articles/one.html", "/articles/two.html", "/articles/three.html",
              "/new.html", "/flaky.html", "/deep1.html", "/deep2.html"}
EXPECTED_DROPS = {"robots": 1, "status_404": 1, "status_503": 1, "timeout": 1, "page_timeout": 1,
                  "too_large": 2, "not_html": 1, "scheme": 3, "empty_body": 1, "binary": 1}


@pytest.mark.parametrize("pages", ["hand_written", "shared"])
def test_crawl_site(pages: str, tmp_path: Path) -> None:
    articles = hand_written() if pages == "hand_written" else shared_pages()
    site = Site(articles)
    out = tmp_path / "crawl"
    with Server(site) as server:
        stats = run_crawl([server.base + "/"], out, config())
    base = server.base

    # Exactly these pages were written, each once, as request + response pairs; the redirect too.
    written = {e["url"][len(base):] for e in log_of(out) if e["outcome"] == "written"}
    assert written == FETCHED_OK
    assert stats["written"] == stats["docs_out"] == len(FETCHED_OK)
    records = warc_records(out)
    assert records[0][0] == "warcinfo"
    pairs = [(t, u[len(base):], s) for t, u, s in records[1:]]
    responses = {(u, s) for t, u, s in pairs if t == "response"}
    assert responses == {(u, 200) for u in FETCHED_OK} | {("/old", 301)}
    assert Counter(t for t, _, _ in pairs) == {"request": len(FETCHED_OK) + 1, "response": len(FETCHED_OK) + 1}

    # Every drop has its reason; robots.txt was obeyed and never fetched more than once.
    dropped = dict(stats["dropped"])
    depth = dropped.pop("depth")
    assert dropped == EXPECTED_DROPS
    assert depth == 2 if pages == "hand_written" else depth > 2  # deep3 and the mailto link beside it
    assert site.hits["/private/secret.html"] == 0 and site.hits["/private/other.html"] == 0
    assert site.hits["/robots.txt"] == 1 and stats["robots"] == {"ok": 1}
    assert site.agents == {DEFAULT_USER_AGENT} and DEFAULT_USER_AGENT.startswith("lmpipe-crawler/")
    assert site.hits["/deep3.html"] == 0
    # Frontier without repeats: every URL requested once, except the retried ones (503 once, slow timed out twice).
    assert site.hits["/flaky.html"] == 2 and site.hits["/slow.html"] == 2 and site.hits["/busy.html"] == 1
    assert all(n == 1 for p, n in site.hits.items() if p not in ("/flaky.html", "/slow.html")), site.hits
    assert stats["redirects"] == 1 and stats["retries"] == 2

    # Our reader turns the WARC into documents, and the ingest stage extracts the pages' text.
    read = ReadStats()
    docs = {r["url"][len(base):]: r for f in out.glob("*.warc.gz") for r in read_records(f, read)}
    assert set(docs) == FETCHED_OK and read.skipped == {"request": 10, "warcinfo": 1, "http_status": 1}
    assert not read.damage
    ingest_out = tmp_path / "ingest"
    ingest_out.mkdir()
    result = run_ingest(sorted(out.glob("*.warc.gz")), ingest_out, IngestConfig(min_chars=20))
    rows = {r["url"][len(base):]: r["text"] for r in pq.read_table(ingest_out / "docs-00000.parquet").to_pylist()}
    assert result["docs_in"] == len(FETCHED_OK)
    for path in SHARED_PAGES:
        assert path in rows, (path, result["dropped"])
        if pages == "hand_written":
            assert PHRASES[path] in rows[path]
        else:
            assert len(rows[path]) > 500  # the article, not just a title
    if pages == "shared":  # the gb2312 page decodes to Chinese text
        assert sum("\u4e00" <= c <= "\u9fff" for c in rows["/articles/three.html"]) > 200


def test_budget_and_breadth_first_order(tmp_path: Path) -> None:
    site = Site(hand_written())
    with Server(site) as server:
        stats = run_crawl([server.base + "/"], tmp_path, config(max_pages=4, concurrency=1, per_host_concurrency=1))
    pages = [p for p, _ in site.requests if p != "/robots.txt"]
    # The index, then its links in page order; the robots-forbidden link costs no budget.
    assert pages == ["/", "/articles/", "/old", "/missing.html"]
    assert stats["pages_requested"] == 4
    assert stats["dropped"]["budget"] > 0 and stats["dropped"]["robots"] == 1


def test_politeness_per_host_delay_and_concurrency(tmp_path: Path) -> None:
    """Lower bounds only: the gaps the crawler must leave, never how fast it is."""
    site = Site({})
    with Server(site) as server:
        seeds = [server.base + p for p in ("/deep1.html", "/new.html", "/articles/")]
        run_crawl(seeds, tmp_path, config(per_host_delay=0.2, per_host_concurrency=1, max_depth=0))
    starts = [t for p, t in site.requests]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 4 and min(gaps[1:]) >= 0.2  # robots.txt, then three pages 0.2 s apart or more
    assert site.max_active == 1


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    def wait_page(handler, path: str, hit: int) -> None:
        if hit == 1:
            handler.send(429, b"slow down", headers={"Retry-After": "1"})
        else:
            handler.send(200, _page("Thanks for waiting."))

    site = Site({}, extra={"/wait.html": wait_page})
    with Server(site) as server:
        stats = run_crawl([server.base + "/wait.html"], tmp_path, config(max_depth=0))
    times = [t for p, t in site.requests if p == "/wait.html"]
    assert stats["written"] == 1 and stats["retries"] == 1
    assert times[1] - times[0] >= 1.0  # backoff_base is 0.01 s: only Retry-After explains the wait


@pytest.mark.parametrize("status,body,expected_robots,expected", [
    (500, b"oops", "unavailable", {"robots_unavailable": 1}),  # RFC 9309: 5xx means full disallow
    (404, b"nothing", "missing", {}),  # 4xx: no rules
    (200, b"\x00\x01\x02\xff binary", "invalid", {}),  # does not parse: counted, no rules
    (200, b"<html><body>Welcome to our shop</body></html>", "invalid", {}),  # a soft-404 page
])
def test_robots_failures(tmp_path: Path, status: int, body: bytes, expected_robots: str, expected: dict) -> None:
    site = Site({}, robots=body, robots_status=status)
    with Server(site) as server:
        stats = run_crawl([server.base + "/new.html"], tmp_path, config(max_depth=0, retries=1))
    assert stats["robots"] == {expected_robots: 1}
    assert stats["dropped"] == expected
    assert stats["written"] == (0 if expected else 1)
    assert site.hits["/robots.txt"] == (2 if status == 500 else 1)  # 5xx is retried


def test_private_addresses_refused_unless_allowed(tmp_path: Path) -> None:
    site = Site({})
    with Server(site) as server:
        port = site.port
        seeds = [server.base + "/", f"http://localhost:{port}/new.html", f"http://0.0.0.0:{port}/",
                 "http://10.0.0.1/", "http://[::1]/", "file:///etc/passwd", "ftp://example.org/"]
        stats = run_crawl(seeds, tmp_path / "a", CrawlConfig(max_depth=0, per_host_delay=0.0, connect_timeout=0.5))
        assert site.requests == []  # nothing reached the server, not even robots.txt
        assert stats["dropped"] == {"private_address": 5, "scheme": 2} and stats["written"] == 0
        assert stats["warc_files"] == []

        # Allowing only 127.0.0.1/32: the server is reachable, but every redirect hop is checked again.
        seeds = [server.base + p for p in ("/to-ten", "/to-loopback", "/to-metadata", "/new.html")]
        cfg = CrawlConfig(max_depth=0, per_host_delay=0.0, allow_networks=["127.0.0.1/32"], connect_timeout=0.5)
        stats = run_crawl(seeds, tmp_path / "b", cfg)
    assert stats["written"] == 1 and stats["redirects"] == 3
    assert stats["dropped"] == {"private_address": 3}
    refused = {e["url"] for e in log_of(tmp_path / "b") if e.get("reason") == "private_address"}
    assert refused == {"http://10.1.2.3/internal", f"http://127.0.0.2:{port}/",
                       "http://169.254.169.254/latest/meta-data/"}


def test_same_site_and_redirect_limit(tmp_path: Path) -> None:
    def links(handler, path: str, hit: int) -> None:
        handler.send(200, _page("Links.", '<a href="http://other.invalid/x">off</a> <a href="/new.html">on</a>'))

    def loop(handler, path: str, hit: int) -> None:
        handler.send(302, b"", headers={"Location": f"/loop{int(path[5:] or 0) + 1}"})

    site = Site({}, extra={"/links.html": links, "/loop": loop})
    with Server(site) as server:
        stats = run_crawl([server.base + "/links.html", server.base + "/loop"], tmp_path,
                          config(same_site=True, max_depth=1, max_redirects=3))
    assert stats["dropped"] == {"off_site": 1, "too_many_redirects": 1}
    assert site.hits["/new.html"] == 1
    assert [p for p, _ in site.requests if p.startswith("/loop")] == ["/loop", "/loop1", "/loop2", "/loop3"]


def test_normalize_url() -> None:
    assert normalize_url("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag") == "http://example.com/a/c?b=2&a=1"
    assert normalize_url("https://EXAMPLE.com:443") == "https://example.com/"
    assert normalize_url("../x/%7euser/%2f", "http://a.org/b/c/d") == "http://a.org/b/x/~user/%2F"
    assert normalize_url("https://例子.测试/a b") == "https://xn--fsqu00a.xn--0zwm56d/a%20b"
    assert normalize_url("http://user:pw@a.org:8080/?") == "http://a.org:8080/"
    for bad, reason in [("mailto:a@b.org", "scheme"), ("file:///etc/passwd", "scheme"),
                        ("javascript:alert(1)", "scheme"), ("http://a.org:99999/", "bad_url"),
                        ("http:///x", "bad_url")]:
        with pytest.raises(Drop) as err:
            normalize_url(bad)
        assert err.value.reason == reason, bad


def test_parse_robots_groups_and_precedence() -> None:
    text = """# comment
User-agent: *
Disallow: /private/
Allow: /private/open$
Disallow: /*.pdf$
Crawl-delay: 3

User-agent: lmpipe-crawler
User-agent: other-bot
Disallow: /only-us
Allow: /only-us/but-this
Crawl-delay: 0.5
"""
    ours, ok = parse_robots(text, "lmpipe-crawler/0.1 (+https://example.org)")
    assert ok and ours.crawl_delay == 0.5
    assert not ours.allowed("/only-us/x") and ours.allowed("/only-us/but-this/y") and ours.allowed("/private/x")
    others, _ = parse_robots(text, "SomeBot/2.0")
    assert others.crawl_delay == 3.0
    assert not others.allowed("/private/x") and others.allowed("/private/open") and not others.allowed("/private/open2")
    assert not others.allowed("/doc.pdf") and others.allowed("/doc.pdf?x=1") and others.allowed("/robots.txt")
    assert parse_robots("", "x") == (parse_robots("", "x")[0], True)
    assert parse_robots("<html>Not found</html>", "x")[1] is False
    assert parse_robots("# nothing to say\n\n", "x")[1] is True  # comments only: valid, no rules


def test_cli_crawl_end_to_end(tmp_path: Path) -> None:
    lmpipe = REPO / ".venv" / "bin" / "lmpipe"
    if not lmpipe.exists():
        pytest.skip("no .venv/bin/lmpipe (run `make` first)")
    site = Site(hand_written())
    seeds = tmp_path / "seeds.txt"
    with Server(site) as server:
        seeds.write_text(f"# test seeds\n{server.base}/articles/\n\n")
        proc = subprocess.run([str(lmpipe), "crawl", "--seeds", str(seeds), "--out", str(tmp_path / "out"),
                               "--depth", "1", "--max-pages", "10", "--allow-private", "--same-site",
                               "--set", "per_host_delay=0", "--set", "read_timeout=2"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "written" in proc.stdout and ".warc.gz" in proc.stdout
    docs = [r for f in (tmp_path / "out").glob("*.warc.gz") for r in read_records(f)]
    assert {d["url"][len(server.base):] for d in docs} == {"/articles/", *SHARED_PAGES, "/"}



@pytest.mark.parametrize("args,needle", [
    (["--seeds", "{tmp}/nope.txt"], "lmpipe: error: seeds file not found"),
    (["--seeds", "{tmp}/empty.txt"], "lmpipe: error: no seed URLs in"),
    (["--seeds", "{tmp}/seeds.txt", "--set", "no_such_key=1"], "invalid crawl setting 'no_such_key'"),
    (["--seeds", "{tmp}/seeds.txt", "--max-pages", "0"], "invalid crawl setting 'max_pages'"),
])
def test_cli_crawl_bad_input(tmp_path: Path, monkeypatch, capsys, args: list[str], needle: str) -> None:
    """One-line errors and exit code 2 (in-process: the subprocess path is covered above)."""
    from flows.cli import main

    monkeypatch.setenv("LMPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    (tmp_path / "seeds.txt").write_text("http://127.0.0.1:9/\n")
    code = main(["crawl", *[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()  # nothing was crawled


def test_dag_crawl_stage_feeds_ingest(tmp_path: Path) -> None:
    """`crawl.seeds` adds the crawl stage in front of ingest; without seeds the DAG is unchanged."""
    from flows import dag
    from flows.config import resolve_config
    from storage.lineage import lineage_lines
    from storage.store import ArtifactStore

    plain = resolve_config("tiny")
    assert dag.with_crawl(dag.FLOWS["corpus"], plain) == dag.FLOWS["corpus"]
    assert dag.stage_identity("ingest", plain, {})[1] == []  # no parent: ids as before the crawler existed

    site = Site(hand_written())
    store = ArtifactStore(tmp_path / "home")
    with Server(site) as server:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(server.base + "/articles/\n")
        overrides = {"crawl.seeds_file": str(seeds), "crawl.allow_private": "true", "crawl.per_host_delay": "0",
                     "crawl.max_depth": "1", "crawl.same_site": "true", "inputs": "[]"}
        cfg = resolve_config("tiny", overrides)
        assert dag.with_crawl(dag.stages_after("corpus", {}), cfg)[:2] == ["crawl", "ingest"]
        crawl, built = dag.run_stage("crawl", cfg, store, {}, refresh=False)
        assert built and crawl.stats["written"] == 5 and crawl.inputs[0]["path"] == str(seeds.resolve())
        ingest, _ = dag.run_stage("ingest", cfg, store, {"crawl": crawl.id}, refresh=False)
        assert ingest.parents == [crawl.id] and dag.planned_id("ingest", cfg, {}) == ingest.id
        again, built = dag.run_stage("crawl", cfg, store, {}, refresh=False)  # same seeds and config: served
        assert not built and again.id == crawl.id and site.hits["/articles/"] == 1
    rows = pq.read_table(store.local_dir(ingest.id) / "docs-00000.parquet").to_pylist()
    texts = {r["url"][len(server.base):]: r["text"] for r in rows}
    assert all(PHRASES[p] in texts[p] for p in PHRASES)
    assert "[crawl]" in "\n".join(lineage_lines(store, ingest.id))
    assert {"crawl", "ingest", "mix"} <= dag.expand_refresh(["crawl"])


@pytest.mark.slow
def test_prefect_corpus_flow_with_crawl(prefect_harness, tmp_path: Path) -> None:
    """Under Prefect the crawl is its own task in front of ingest, and its pages reach the mixed corpus."""
    from flows.prefect_flows import corpus_flow
    from storage.store import ArtifactStore

    site = Site(hand_written())
    with Server(site) as server:
        overrides = {"crawl.seeds": json.dumps([server.base + "/articles/"]), "crawl.allow_private": "true",
                     "crawl.per_host_delay": "0", "crawl.max_depth": "1", "crawl.same_site": "true"}
        results = corpus_flow(preset="tiny", overrides=overrides, home=str(tmp_path))
    assert list(results)[:2] == ["crawl", "ingest"] and results["crawl"]["built"]
    store = ArtifactStore(tmp_path)
    ingest = store.get(results["ingest"]["id"])
    assert ingest.parents == [results["crawl"]["id"]]
    assert ingest.stats["read"]["files"]
    assert any(name.startswith("lmpipe-crawl-") for name in ingest.stats["read"]["files"])
