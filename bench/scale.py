"""Scaling of the curation half with input size and worker count: ours (`lmpipe run corpus`) vs datatrove.

What it measures. For each input size (`--sizes`, in units of 4,000 pages: 1x = 4 WARC files, 4x = 16, 16x = 64)
and each worker count W (`--workers`), on the same files in the same invocation:

* ours: `lmpipe run corpus --no-prefect --no-generate --input DIR --workers W` as a subprocess, with
  `LMPIPE_HOME` set to a fresh, empty store (nothing is served from earlier artifacts); `--ours-cmd` changes
  the command template (placeholders {lmpipe} {python} {input} {workers}; {input} is the quoted glob of the input
  directory's WARC files, so the cache's own inputs.json beside them is never read as an input);
* the peer: datatrove 0.10.1's `LocalPipelineExecutor` (tasks = number of WARC files, workers = W, its default
  forkserver start method) over WarcReader -> Trafilatura -> LanguageFilter(en, zh) -> GopherRepetitionFilter
  -> GopherQualityFilter -> ParquetWriter, the steps of bench/curation.py's peer (its `datatrove_filters()`),
  also in a subprocess. It does less work than ours (no dedup, quality model, PII, mix): ratios are conservative.

Both are timed the same way: wall time of the subprocess; CPU seconds of the whole process tree, the
`getrusage(RUSAGE_CHILDREN)` delta around it, with this process made a child subreaper (Linux) so that
orphaned descendants (a forkserver and its pool workers, whose parent exits without waiting) are re-parented
here and reaped, and their CPU counted; peak RSS from sampling /proc every 0.2 s over every descendant: the
largest single process and the largest sum (the sum over-counts pages that forked workers share).
The machine is shared: "other jobs' CPU s" is what the rest of the machine used during a run (/proc/stat busy
time minus ours); a run beside a busy neighbour gets less than W cores, so compare runs where it is small, or
take the least disturbed of `--reps` runs.
"docs" = the HTML response records written into the inputs (one definition for both); what each pipeline
actually read (ours: the ingest manifest's `docs_in`; datatrove: WarcReader's output) and kept is reported too.

How the inputs are built (cached in `--cache/inputs-<N>`, rebuilt for another seed; deterministic for a seed):

1. Real pages: every 2xx text/html response in ../shared/data/warc/*.warc.gz (Common Crawl 2020-34 and 2024-22,
   Dolma's wget crawls, UKWA and archive-it Heritrix crawls) and every source page under ../shared/data/html
   (trafilatura, readability, GNE, WCEB, Chinese extraction sets; see SOURCES.md there), minus readability's
   hand-made edge cases (001-005, base-url*), deduplicated by SHA-256 of the bytes: 3,437 distinct pages.
2. Each page's language is `curation.langid.identify` on its <p> text; its paragraphs are the <p> elements
   with at least 50 characters (20 for zh/ja/ko). The paragraphs of each language form a pool (exact
   duplicates removed).
3. N pages = 1% exact duplicates (a byte copy of another page of the set at a new URL) + 2% near duplicates
   (a page of the set with one paragraph replaced, re-rendered) + the rest: every distinct real page once,
   verbatim (a seeded sample of them when N is smaller), then synthetic pages. A synthetic page takes a real
   page (the template: >= 3 paragraphs that hold >= half of its visible text, in a language whose pool has
   >= 200 paragraphs: en, zh, de, fr, es, pl) and replaces the text of each paragraph with one drawn at random
   from the pool of the same language, never from the template itself; it is re-encoded as UTF-8 and its URL
   gets a query `?v=<i>`. So no page is copied verbatim beyond the stated 1%, and the pages of the larger
   sizes are mostly synthetic (1x: 3,437 real + 443 synthetic; 16x: 3,437 real + ~58,600 synthetic). Our
   dedup stage removed 100 of 4,000 (1x) and 420 of 16,000 (4x) as exact or near duplicates: about the planted
   3%, so the synthetic pages do not add duplicates of their own.
4. The pages are shuffled (seeded) and written 1,000 per file as WARC/1.0 with warcio, gzip per record:
   a warcinfo record, then per page a `request` and a `response` record (HTTP/1.1 headers,
   WARC-Identified-Payload-Type: text/html as Common Crawl writes it, WARC-Concurrent-To, fixed dates and
   record ids derived from the seed, so the files are byte-identical for a seed).

    .venv/bin/python bench/scale.py --quick                  # 1x, workers 1,2: ~6 min on 2 idle cores
    .venv/bin/python bench/scale.py --sizes 1,4,16 --workers 1,2 --json /tmp/scale.json   # ~2 h idle
    # a CLI without --workers: the same runs of our side at its own default
    .venv/bin/python bench/scale.py --quick --ours-cmd '{lmpipe} run corpus --no-prefect --no-generate --input {input}'

Needs ../shared/data (skipped with a message, exit 0, when absent) and the `bench` extra for the peer
(exit 2 without it). Exit 1 when a run failed (its log's tail is printed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import io
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `curation` is the package, not bench/curation.py beside this script
SHARED = REPO.parent / "shared" / "data"
PAGES_PER_FILE = 1000
PAGES_PER_UNIT = 4000  # "1x"
EXACT_DUP_SHARE = 0.01  # CC keeps some byte-identical pages under other URLs; dedup should find these
NEAR_DUP_SHARE = 0.02
MIN_PARA_CHARS = {"zh": 20, "ja": 20, "ko": 20}  # CJK packs more per character
DEFAULT_MIN_PARA_CHARS = 50
MIN_POOL = 200  # a language needs this many paragraphs before it gets synthetic pages
BUILD_VERSION = 2  # bump when the builder changes: cached inputs of another version are rebuilt
DEFAULT_OURS = "{lmpipe} run corpus --no-prefect --no-generate --input {input} --workers {workers}"


# ------------------------------------------------------------------------------------------ real pages


@dataclasses.dataclass
class Page:
    url: str
    body: bytes
    content_type: str  # HTTP Content-Type of the response
    origin: str  # where it came from (a WARC file, or html/<set>/<path>), for debugging
    lang: str = ""
    paras: list[int] = dataclasses.field(default_factory=list)  # indices into the paragraph list
    template: bool = False


def warc_pages(warc_dir: Path) -> Iterator[Page]:
    from warcio.archiveiterator import ArchiveIterator

    for path in sorted(warc_dir.glob("*.warc.gz")):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type != "response" or rec.http_headers is None:
                    continue
                ctype = rec.http_headers.get_header("Content-Type") or ""
                status = rec.http_headers.get_statuscode() or ""
                if status.startswith("2") and ctype.split(";")[0].strip().lower() in ("text/html",
                                                                                       "application/xhtml+xml"):
                    body = rec.content_stream().read()  # de-chunked, de-gzipped: we write fresh headers
                    url = _http_url(rec.rec_headers.get_header("WARC-Target-URI"))
                    yield Page(url or f"http://{path.name}.invalid/{len(body)}", body, ctype, path.name)


def _index_urls(pages_dir: Path) -> dict[str, str]:
    """page file name -> URL from the index.jsonl beside a `pages/` folder (WCEB, trafilatura, zh sets)."""
    urls: dict[str, str] = {}
    index = pages_dir.parent / "index.jsonl"
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            page = row.get("page") or row.get("file")
            if page and row.get("url"):
                urls[Path(page).name] = row["url"]
    return urls


def html_pages(html_dir: Path) -> Iterator[Page]:
    files = sorted(p for p in html_dir.rglob("*.html.gz")
                   if "pages" in p.relative_to(html_dir).parts[:-1] or p.name == "source.html.gz")
    urls: dict[Path, dict[str, str]] = {}
    for path in files:
        rel = path.relative_to(html_dir)
        if path.name == "source.html.gz" and path.parent.name.startswith(("00", "base-url")):
            continue  # readability's hand-written edge cases, not real pages
        if path.parent not in urls:
            urls[path.parent] = _index_urls(path.parent)
        url = _http_url(urls[path.parent].get(path.name)) or f"http://{rel.parts[0]}.invalid/{rel.as_posix()[:-3]}"
        yield Page(url, gzip.decompress(path.read_bytes()), "text/html", f"html/{rel.as_posix()}")


def _http_url(url: str | None) -> str | None:
    """An http(s) URL, percent-encoded where needed, or None (some test sets name pages 'hard::site.html':
    warcio parses HTTP headers only for http(s) targets)."""
    parts = urlsplit(quote(url or "", safe=":/?#[]@!$&'()*+,;=%~"))
    return urlunsplit(parts) if parts.scheme in ("http", "https") and parts.netloc else None


def real_pages(data: Path) -> list[Page]:
    seen: set[bytes] = set()
    pages = []
    for page in [*warc_pages(data / "warc"), *html_pages(data / "html")]:
        digest = hashlib.sha256(page.body).digest()
        if digest not in seen and page.body.strip():
            seen.add(digest)
            pages.append(page)
    return pages


# ----------------------------------------------------------------------------------- paragraphs, languages


@dataclasses.dataclass
class Corpus:
    pages: list[Page]
    paras: list[str]  # unique paragraph texts
    pools: dict[str, list[int]]  # language -> paragraph indices


def _parse(page: Page) -> Any:
    import lxml.html

    from curation.extract import decode_html

    charset = page.content_type.partition("charset=")[2].strip().strip("\"'") or None
    try:
        return lxml.html.document_fromstring(decode_html(page.body, charset))
    except Exception:  # lxml raises several types on empty or odd documents; such a page is no template
        return None


def _clean(text: str) -> str:
    # whitespace collapsed; control characters dropped (lxml refuses them when the text is set back)
    return " ".join("".join(c for c in text if c >= " " or c in "\t\n\r").split())


def _slots(root: Any, lang: str) -> list[tuple[Any, str]]:
    """The paragraphs of a page: (<p> element, its text) with at least the language's minimum length."""
    minimum = MIN_PARA_CHARS.get(lang, DEFAULT_MIN_PARA_CHARS)
    texts = [(p, _clean(p.text_content())) for p in root.iter("p")]
    return [(p, t) for p, t in texts if len(t) >= minimum]


def _visible_chars(root: Any) -> int:
    from lxml import etree

    etree.strip_elements(root, "script", "style", "noscript", etree.Comment, with_tail=False)
    body = root.find("body")
    return len(_clean((body if body is not None else root).text_content()))


def analyse(pages: list[Page]) -> Corpus:
    """Set each page's language, paragraphs and template flag; pool the paragraphs by language."""
    from curation.langid import identify

    paras: list[str] = []
    index: dict[str, int] = {}
    langs: list[str] = []  # language of each paragraph (of the page that first had it)
    for page in pages:
        root = _parse(page)
        if root is None:
            continue
        all_p = " ".join(_clean(p.text_content()) for p in root.iter("p"))
        page.lang = identify(all_p[:4000] or _clean(root.text_content())[:4000])[0] or "und"
        slots = [t for _, t in _slots(root, page.lang)]
        # A template must carry its text in <p>: text elsewhere would be copied into every synthetic page
        page.template = len(slots) >= 3 and sum(map(len, slots)) >= 0.5 * _visible_chars(root)
        for text in slots:
            if text not in index:
                index[text] = len(paras)
                paras.append(text)
                langs.append(page.lang)
            page.paras.append(index[text])
    pools: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        pools.setdefault(lang, []).append(i)
    for page in pages:
        page.template = page.template and len(pools.get(page.lang, [])) >= MIN_POOL
    return Corpus(pages, paras, pools)


# ----------------------------------------------------------------------------------------------- plan


@dataclasses.dataclass(frozen=True)
class Spec:
    kind: str  # real | synthetic | exact-dup | near-dup
    page: int  # the real page, or the template of a synthetic one
    paras: tuple[int, ...] = ()  # synthetic: the paragraph put into each of the template's slots


def _draw(corpus: Corpus, page: Page, rng: random.Random) -> int:
    pool, own = corpus.pools[page.lang], set(page.paras)
    while True:  # the pool has >= MIN_POOL paragraphs, far more than one page's
        para = rng.choice(pool)
        if para not in own:
            return para


def plan(corpus: Corpus, n: int, rng: random.Random) -> list[Spec]:
    """N page specs: every distinct real page once, synthetic pages for the rest, a few duplicates; shuffled."""
    n_exact, n_near = round(n * EXACT_DUP_SHARE), round(n * NEAR_DUP_SHARE)
    real = list(range(len(corpus.pages)))
    rng.shuffle(real)
    base = [Spec("real", i) for i in real[: n - n_exact - n_near]]
    templates = [i for i, p in enumerate(corpus.pages) if p.template]
    while len(base) < n - n_exact - n_near:
        t = rng.choice(templates)
        page = corpus.pages[t]
        base.append(Spec("synthetic", t, tuple(_draw(corpus, page, rng) for _ in page.paras)))
    # near duplicates of pages in the set (real or synthetic): one paragraph replaced, Jaccard ~ (k-1)/(k+1)
    sources = [s for s in base if corpus.pages[s.page].template and len(corpus.pages[s.page].paras) >= 4]
    dups = [dataclasses.replace(rng.choice(base), kind="exact-dup") for _ in range(n_exact)]
    for _ in range(n_near):
        src = rng.choice(sources)
        paras = list(src.paras or corpus.pages[src.page].paras)  # a real page: its own paragraphs
        paras[rng.randrange(len(paras))] = _draw(corpus, corpus.pages[src.page], rng)
        dups.append(Spec("near-dup", src.page, tuple(paras)))
    specs = base + dups
    rng.shuffle(specs)
    return specs


# --------------------------------------------------------------------------------------------- render


def render(corpus: Corpus, spec: Spec) -> tuple[bytes, str]:
    """(HTTP body, Content-Type) of a page spec."""
    import lxml.html

    page = corpus.pages[spec.page]
    if not spec.paras:
        return page.body, page.content_type
    root = _parse(page)
    for (p, _), para in zip(_slots(root, page.lang), spec.paras):
        for child in list(p):
            p.remove(child)  # removes the child's tail text too: the whole paragraph is replaced
        p.text = corpus.paras[para]
    # Re-encoded as UTF-8: the template's own charset declaration would now lie
    for meta in list(root.iter("meta")):
        if meta.get("charset") is not None or (meta.get("http-equiv") or "").lower() == "content-type":
            meta.drop_tree()
    head = root.find("head")
    if head is None:
        head = lxml.html.Element("head")
        root.insert(0, head)
    head.insert(0, lxml.html.Element("meta", charset="utf-8"))
    return lxml.html.tostring(root, encoding="utf-8", doctype="<!DOCTYPE html>"), "text/html; charset=utf-8"


def _with_query(url: str, i: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", f"v={i}", ""))


def _record_id(*key: object) -> str:
    digest = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return f"<urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}>"


def _warc_date(i: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1716163200 + i))  # 2024-05-20 (CC-MAIN-2024-22)


def write_warc(path: Path, pages: list[tuple[str, bytes, str]], seed: int, first: int) -> None:
    """One WARC/1.0 file, gzip per record: warcinfo, then a request + response pair per (url, body, ctype)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version="WARC/1.0")
        fields = f"software: lmpipe bench/scale.py\nformat: WARC File Format 1.0\nseed: {seed}\n".encode()
        writer.write_record(writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(fields), length=len(fields), warc_content_type="application/warc-fields",
            warc_headers_dict={"WARC-Record-ID": _record_id(seed, path.name), "WARC-Date": _warc_date(first),
                               "WARC-Filename": path.name}))
        for i, (url, body, ctype) in enumerate(pages, start=first):
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            req_id, date = _record_id(seed, i, "request"), _warc_date(i)
            request = StatusAndHeaders(f"GET {target} HTTP/1.1", [
                ("Host", parts.netloc), ("User-Agent", "lmpipe-scale/1.0"), ("Accept", "text/html")],
                is_http_request=True)
            writer.write_record(writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), length=0, http_headers=request,
                warc_headers_dict={"WARC-Record-ID": req_id, "WARC-Date": date}))
            response = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                        protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), http_headers=response,
                warc_headers_dict={"WARC-Record-ID": _record_id(seed, i, "response"), "WARC-Date": date,
                                   "WARC-Concurrent-To": req_id, "WARC-Identified-Payload-Type": "text/html"}))


def build_inputs(corpus_fn: Any, n: int, seed: int, cache: Path) -> tuple[Path, dict[str, Any]]:
    """The input folder for N pages (built once, then reused) and its description (inputs.json)."""
    out = cache / f"inputs-{n}"
    marker = out / "inputs.json"
    want = {"version": BUILD_VERSION, "pages": n, "seed": seed}
    if marker.is_file():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            return out, info
    corpus: Corpus = corpus_fn()
    t0 = time.perf_counter()
    specs = plan(corpus, n, random.Random(seed))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".tmp-inputs-{n}-"))
    langs: Counter[str] = Counter()
    for f in range(0, n, PAGES_PER_FILE):
        chunk = []
        for i, spec in enumerate(specs[f: f + PAGES_PER_FILE], start=f):
            body, ctype = render(corpus, spec)
            page = corpus.pages[spec.page]
            chunk.append((page.url if spec.kind == "real" else _with_query(page.url, i), body, ctype))
            langs[page.lang] += 1
        write_warc(tmp / f"scale-{f // PAGES_PER_FILE:05d}.warc.gz", chunk, seed, f)
    info = {**want, "files": -(-n // PAGES_PER_FILE), "html_records": n,
            "kinds": dict(Counter(s.kind for s in specs)), "langs": dict(langs.most_common()),
            "distinct_real_pages": len(corpus.pages), "templates": sum(p.template for p in corpus.pages),
            "paragraphs": {lang: len(pool) for lang, pool in corpus.pools.items() if len(pool) >= MIN_POOL},
            "bytes": sum(p.stat().st_size for p in tmp.glob("*.warc.gz")),
            "build_s": round(time.perf_counter() - t0, 1)}
    (tmp / "inputs.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.chmod(0o755)
    tmp.rename(out)
    return out, info


# ------------------------------------------------------------------------------------------ measurement


def become_subreaper() -> bool:
    """Make orphaned descendants children of this process (Linux prctl PR_SET_CHILD_SUBREAPER), so that the
    CPU time of a forkserver and its workers, whose parent exits without waiting for them, is still reaped here
    and shows in RUSAGE_CHILDREN."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _proc_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (parent pid, CPU s so far, RSS bytes), from /proc/<pid>/stat."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:  # gone since listdir
                continue
            # after the command name: state ppid ... utime(12th) stime(13th) ... rss(22nd, pages)
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, int(fields[21]) * page)
    return table


class TreeSampler(threading.Thread):
    """Every `interval` s: RSS of every descendant of this process; keeps the largest single RSS, the largest
    sum and each process's last CPU reading (a cross-check of the rusage figure; it misses each process's
    last interval)."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.max_rss = self.max_sum = self.max_procs = 0
        self.cpu: dict[int, float] = {}

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            table = _proc_table()
            kids: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                kids.setdefault(ppid, []).append(pid)
            tree, todo = [], list(kids.get(me, []))
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo += kids.get(pid, [])
            rss = [table[p][2] for p in tree]
            self.max_rss, self.max_sum = max(self.max_rss, max(rss, default=0)), max(self.max_sum, sum(rss))
            self.max_procs = max(self.max_procs, len(tree))
            self.cpu.update((p, table[p][1]) for p in tree)
            self.stop.wait(self.interval)


def _reap_orphans(timeout: float = 60.0) -> int:
    """Wait for (and reap) descendants re-parented here; after `timeout` s, terminate what is left.
    Returns how many had to be terminated."""
    deadline, killed = time.monotonic() + timeout, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid:
            continue
        if time.monotonic() > deadline:
            me = os.getpid()
            for child, (ppid, _, _) in _proc_table().items():
                if ppid == me:  # only our own children: the run's leftovers
                    os.kill(child, signal.SIGTERM)
                    killed += 1
            deadline += 10
        time.sleep(0.05)


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat): minus our tree's CPU over a run,
    what other jobs took meanwhile; the machine is shared, so a run with much of it is a disturbed run."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run cmd; wall s, CPU s of its process tree, peak RSS, exit code, stdout (its output goes to `log`)."""
    sampler = TreeSampler()
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), _machine_busy_s()
    t0 = time.perf_counter()
    sampler.start()
    with log.open("wb") as err:
        try:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:  # e.g. --ours-cmd names a program that is not there
            err.write(f"cannot start {cmd[0]}: {exc}\n".encode())
            proc = None
        out = proc.communicate()[0] if proc else b""
    wall = time.perf_counter() - t0
    killed = _reap_orphans()
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    others = _machine_busy_s() - busy - cpu  # includes this process's sampler thread (~1% of a core)
    return {"rc": proc.returncode if proc else 127, "wall_s": wall, "cpu_s": cpu,
            "cpu_s_sampled": sum(sampler.cpu.values()), "others_cpu_s": others,
            "peak_rss_mib": sampler.max_rss / 2**20, "peak_rss_sum_mib": sampler.max_sum / 2**20,
            "max_procs": sampler.max_procs, "orphans_killed": killed, "stdout": out.decode(errors="replace")}


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join("      " + line for line in text[-lines:])


# ----------------------------------------------------------------------------------------------- ours


def _manifests(home: Path, kind: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(home.glob(f"{kind}/{kind}-*/manifest.json")):  # the store layout of README.md
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def run_ours(template: str, inputs: Path, workers: int, work: Path) -> dict[str, Any]:
    """`lmpipe run corpus` on `inputs` into a fresh store; what it read (ingest docs_in) and kept (mix rows)."""
    home = work / "store"
    lmpipe = Path(sys.executable).parent / "lmpipe"
    cmd = shlex.split(template.format(lmpipe=shlex.quote(str(lmpipe)), python=shlex.quote(sys.executable),
                                      input=shlex.quote(str(inputs / "*.warc.gz")), workers=workers))
    result = run_measured(cmd, {**os.environ, "LMPIPE_HOME": str(home)}, work / "ours.log")
    result["cmd"] = shlex.join(cmd)
    ingest, mix = _manifests(home, "ingest"), _manifests(home, "mix")
    result["read"] = sum(m.get("stats", {}).get("docs_in", 0) for m in ingest) if ingest else None
    if mix:  # the corpus: train + val rows of the mix artifact
        stats = mix[-1].get("stats", {})
        result["kept"] = sum(stats.get(split, {}).get("rows", 0) for split in ("train", "val"))
    # drops by reason per stage, for the raw numbers (e.g. how many duplicates dedup found in the inputs)
    result["dropped"] = {kind: found[-1].get("stats", {}).get("dropped")
                         for kind in ("ingest", "langid", "filter", "dedup") if (found := _manifests(home, kind))}
    return result


# ------------------------------------------------------------------------------------------- datatrove


class LazyLid:
    """lid.176 for datatrove's LanguageFilter, loaded on first use in whichever process runs the rank.
    bench/curation.py hands the filter a loaded model, which the executor cannot pickle (pool workers) or
    deep-copy (one copy of the pipeline per rank); this pickles empty. Same model file and fastText code."""

    def __init__(self) -> None:
        self.model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model = None

    def predict(self, text: str, k: int = 1) -> tuple[Any, Any]:
        import numpy as np
        from fasttext.FastText import _FastText

        from curation.langid import model_path

        if self.model is None:
            self.model = _FastText(str(model_path()))
        labels, probs = self.model.predict(text, k=k)
        return labels, np.asarray(probs)  # datatrove calls .item() on these (the fasttext wheel's numpy)


def peer_child(inputs: str, workers: str, work: str) -> int:
    """The datatrove pipeline over `inputs` with LocalPipelineExecutor; prints per-step document counts."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    from bench import curation as bench_curation

    filters = bench_curation.datatrove_filters()
    filters[0].model._model = LazyLid()
    tasks = len(list(Path(inputs).glob("*.warc.gz")))
    pipeline = [
        WarcReader(inputs, glob_pattern="*.warc.gz"),
        Trafilatura(favour_precision=True, timeout=10.0),  # 10 s as in bench/curation.py: no load-made timeouts
        *filters,
        ParquetWriter(str(Path(work) / "out"), compression="zstd"),
    ]
    executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=int(workers),
                                     logging_dir=str(Path(work) / "logs"), skip_completed=False)
    stats = executor.run()
    steps = [{"name": s.name, **{k: v.total if hasattr(v, "total") else v for k, v in s.stats.items()}}
             for s in stats.stats]
    print(json.dumps({"tasks": tasks, "steps": steps}, default=str))
    return 0


def run_peer(inputs: Path, workers: int, work: Path) -> dict[str, Any]:
    main = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench import scale; "
            "sys.exit(scale.peer_child(*sys.argv[1:]))")
    result = run_measured([sys.executable, "-c", main, str(inputs), str(workers), str(work)], dict(os.environ),
                          work / "datatrove.log")
    lines = result["stdout"].strip().splitlines()
    if result["rc"] == 0 and lines:
        steps = json.loads(lines[-1])["steps"]
        result["steps"] = steps
        result["read"] = steps[0].get("documents")
        result["kept"] = steps[-1].get("total")  # what reached the ParquetWriter
    return result


# ---------------------------------------------------------------------------------------------- report


def _rate(row: dict[str, Any], key: str) -> float | None:
    ok = row.get("rc") == 0 and row.get(key)
    return row["docs"] / row[key] if ok else None


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table: throughput, parallel efficiency against 1 worker, ours / datatrove at the same W."""
    by = {(r["size"], r["pipeline"], r["workers"]): r for r in rows}
    out = ["| size | pipeline | W | docs | read / kept | wall s | CPU s | docs/wall-s | docs/CPU-s | "
           "parallel eff. | peak RSS, largest process (sum) MiB | ours/datatrove docs/wall-s | other jobs' CPU s |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        wall, cpu = _rate(r, "wall_s"), _rate(r, "cpu_s")
        one = by.get((r["size"], r["pipeline"], 1))
        one_rate = _rate(one, "wall_s") if one else None
        eff = f"{wall / (r['workers'] * one_rate):.2f}" if wall and one_rate else "—"
        peer = by.get((r["size"], "datatrove", r["workers"]))
        peer_rate = _rate(peer, "wall_s") if peer else None
        ratio = f"{wall / peer_rate:.2f}x" if r["pipeline"] == "lmpipe" and wall and peer_rate else "—"
        if r.get("rc") != 0:
            out.append(f"| {r['size']:g}x | {r['pipeline']} | {r['workers']} | {r['docs']} | — | "
                       f"failed (rc {r.get('rc')}) | | | | | | | |")
            continue
        out.append(f"| {r['size']:g}x | {r['pipeline']} | {r['workers']} | {r['docs']} | {r.get('read')} / "
                   f"{r.get('kept')} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {wall:.1f} | {cpu:.1f} | {eff} | "
                   f"{r['peak_rss_mib']:.0f} ({r['peak_rss_sum_mib']:.0f}) | {ratio} | {r['others_cpu_s']:.0f} |")
    return "\n".join(out)


def _numbers(text: str, kind: type) -> list[Any]:
    return [kind(x) for x in text.split(",") if x.strip()]


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,16", help="input sizes in units of 4,000 pages (1x = 4 WARC files)")
    ap.add_argument("--workers", default="1,2", help="worker counts W, for both pipelines")
    ap.add_argument("--quick", action="store_true", help="smoke run: --sizes 1 --workers 1,2")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input builder")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lmpipe-scale",
                    help="where built inputs (inputs-<N>) and the runs' scratch folders go")
    ap.add_argument("--ours-cmd", default=DEFAULT_OURS, help="our command; placeholders {lmpipe} {python} "
                    "{input} {workers} (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=1, help="runs of each pipeline and W, alternating; the table "
                    "shows the one with the least wall time (the least disturbed on a shared machine)")
    ap.add_argument("--only", choices=["lmpipe", "datatrove"], help="run one pipeline only")
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    a = ap.parse_args(argv)
    a.sizes = [1.0] if a.quick else _numbers(a.sizes, float)
    a.workers = [1, 2] if a.quick else _numbers(a.workers, int)
    a.pipelines = [a.only] if a.only else ["lmpipe", "datatrove"]
    return a


def run_size(size: float, corpus: Any, a: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                      dict[str, Any]]:
    """All runs on one input size: (best run of each pipeline and W, every run, the inputs' description)."""
    inputs, info = build_inputs(corpus, round(size * PAGES_PER_UNIT), a.seed, a.cache)
    print(f"{size:g}x: {inputs} · {info['files']} files, {info['html_records']} HTML records "
          f"({info['kinds']}), {info['bytes'] / 2**20:.0f} MiB", flush=True)
    rows, runs = [], []
    for w in a.workers:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(a.reps):  # alternating, so that a busy spell of the shared machine hits both
            for name in a.pipelines:
                row = one_run(name, size, w, inputs, info, a)
                runs.append(row)
                if name not in best or (row["rc"] == 0 and (best[name]["rc"] != 0
                                                             or row["wall_s"] < best[name]["wall_s"])):
                    best[name] = row
        rows += best.values()
    return rows, runs, info


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if not (SHARED / "warc").is_dir() or not (SHARED / "html").is_dir():
        print(f"bench/scale.py: skipped: {SHARED}/warc and /html (the real pages the inputs are built from) "
              "are absent", file=sys.stderr)
        return 0
    missing = [m for m in ("spacy", "cchardet", "magic") if importlib.util.find_spec(m) is None]
    if "datatrove" in a.pipelines and missing:
        print(f"bench/scale.py: the datatrove peer needs {', '.join(missing)}: pip install -e '.[bench]'",
              file=sys.stderr)
        return 2
    reaper = become_subreaper()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.machine()} · {os.cpu_count()} cores · sizes "
          f"{a.sizes} · workers {a.workers} · subreaper {'on' if reaper else 'OFF (orphans CPU not counted)'}\n"
          f"ours: {a.ours_cmd}", flush=True)
    corpus = functools.cache(lambda: analyse(real_pages(SHARED)))  # built once, only if some size is not cached
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    inputs: dict[str, Any] = {}
    started = time.perf_counter()
    for size in a.sizes:
        best, every, inputs[f"{size:g}x"] = run_size(size, corpus, a)
        rows, runs = rows + best, runs + every
    print("\n" + table(rows))
    print(f"\nbench time {time.perf_counter() - started:.0f} s; docs = HTML response records written; read = "
          "ours: ingest docs_in, datatrove: WarcReader output; kept = ours: mix train+val rows, datatrove: "
          "ParquetWriter input")
    if a.json:
        a.json.write_text(json.dumps({"argv": sys.argv[1:], "ours_cmd": a.ours_cmd, "rows": rows, "runs": runs,
                                       "inputs": inputs}, indent=1))
    return 0 if all(r.get("rc") == 0 for r in rows) else 1


def one_run(name: str, size: float, w: int, inputs: Path, info: dict[str, Any],
            a: argparse.Namespace) -> dict[str, Any]:
    """One measured run of one pipeline in a scratch folder (removed after); prints a line, returns the row."""
    a.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"run-{name}-", dir=a.cache))
    try:
        res = run_ours(a.ours_cmd, inputs, w, work) if name == "lmpipe" else run_peer(inputs, w, work)
        log = _tail(work / ("ours.log" if name == "lmpipe" else "datatrove.log"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.pop("stdout", None)
    row = {"size": size, "pipeline": name, "workers": w, "docs": info["html_records"], **res}
    print(f"  {size:g}x {name:<9} W={w}: rc {row['rc']}, {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} CPU s "
          f"(sampled {row['cpu_s_sampled']:.1f}), peak RSS {row['peak_rss_mib']:.0f} MiB (sum "
          f"{row['peak_rss_sum_mib']:.0f}, {row['max_procs']} procs), read {row.get('read')}, kept "
          f"{row.get('kept')}; other jobs took {row['others_cpu_s']:.0f} CPU s meanwhile", flush=True)
    if row["rc"] != 0:
        print(f"    {name} failed; the end of its log:\n{log}", flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
