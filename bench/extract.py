"""Main-text extraction quality and speed: `curation.extract.extract_text` against trafilatura (default and
favor_precision), readability-lxml and resiliparse, on the real pages of ../shared/data/html, in one run.

Sets and metrics (every extractor gets the same decoded `str`, decoded by `curation.extract.decode_html`):

* trafilatura's own eval set (263 pages, `evaldata.json`): `with` = share of the human-chosen main-text snippets
  found in the output, `without` = share of boilerplate snippets absent; P/R/F1 as trafilatura's evaluation
  counts them (TP = with found, FN = with missing, FP = without found). Rows for all pages and for the 168
  English ones.
* readability's test pages (130 cases): token-level precision/recall/F1 of the output against the text of
  `expected.html` (bags of tokens; words, and single characters for CJK), mean over pages. Rows for all cases
  and for the English ones (`expected-metadata.json` lang, or the detected language when it has none).
* GNE Chinese news (the 7 pages with GNE's reference output): the same token P/R/F1, characters as tokens.
* speed: pages per second of CPU time (`time.process_time`, one process, one core) over all 400 pages.

    .venv/bin/python bench/extract.py            # ~5 min on one core; --quick: 1 in 4 pages
    .venv/bin/python bench/extract.py --split    # also a split-half check of ours (odd/even pages) and
                                                 # our F1 on the fallback pages under each fallback engine
    .venv/bin/python bench/extract.py --fallback relaxed   # our extractor with another fallback engine
    .venv/bin/python bench/extract.py --news [--test] [--show N]   # English news (L3S-GN1), frozen split by site
    .venv/bin/python bench/extract.py --dragnet [--test]           # the same on Dragnet's English articles
    .venv/bin/python bench/extract.py --cleaneval [--test]         # ... on CleanEval + CleanPortalEval (English)
    .venv/bin/python bench/extract.py --zh [--test]                # ... on 65 Chinese pages, characters as tokens

`--news`: WCEB's L3S-GN1 English news pages (621, gold plain text), cut by site into a dev part (tuning) and a
frozen test part (`bench/splits.py`); token P/R/F1 and pages per CPU-second against trafilatura favor_precision
and default and readability-lxml in the same run; `--test` adds the test part, `--show N` the dev pages ours loses
most on. The other held-out flags do the same on their sets (they combine: `--news --dragnet --cleaneval --zh`).
CleanEval's `<text ...>` wrapper is stripped as WCEB does, and its `encoding` attribute passed as the charset (the
part a crawler reads from the HTTP header). A page with empty gold scores WCEB's way: 1 if the output is empty too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lxml.html  # noqa: E402

import curation.extract as extract_module  # noqa: E402
from curation.extract import decode_html, extract_text  # noqa: E402

HTML = REPO.parent / "shared" / "data" / "html"
# Words, or one CJK character (Han, kana, hangul) per token: Chinese has no spaces, so characters are its tokens.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table",
    "blockquote", "pre", "section", "article", "figure", "figcaption", "header", "footer", "dd", "dt", "hr",
}


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def prf(predicted: str, expected: str) -> tuple[float, float, float]:
    """Bag-of-tokens precision, recall, F1. An empty output against a non-empty reference scores 0/0/0; against
    an empty reference (a page with no main text) WCEB's rule holds: recall 1, and 1/1/1 if the output is empty."""
    pred, gold = tokens(predicted), tokens(expected)
    if not gold:
        return (1.0, 1.0, 1.0) if not pred else (0.0, 1.0, 0.0)
    overlap = sum((pred & gold).values())
    p = overlap / sum(pred.values()) if pred else 0.0
    r = overlap / sum(gold.values()) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment with a newline at every block boundary (for expected.html and
    readability-lxml's HTML output)."""
    if not html.strip():
        return ""
    root = lxml.html.fromstring(html)
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCK:
            element.tail = "\n" + (element.tail or "")
    return root.text_content()


# ------------------------------------------------------------------------------------------ extractors


def trafilatura_default(html: str, url: str | None) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url) or ""


def trafilatura_precision(html: str, url: str | None) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url, favor_precision=True) or ""


def readability_lxml(html: str, url: str | None) -> str:
    from readability import Document

    try:
        return html_to_text(Document(html, url=url).summary(html_partial=True))
    except Exception:  # readability-lxml raises on some empty/odd pages; count it as no output
        return ""


def resiliparse(html: str, url: str | None) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True)


def ours(html: str, url: str | None) -> str:
    return extract_text(html, url)


EXTRACTORS: dict[str, Callable[[str, str | None], str]] = {
    "lmpipe extract_text": ours,
    "trafilatura default": trafilatura_default,
    "trafilatura favor_precision": trafilatura_precision,
    "readability-lxml": readability_lxml,
    "resiliparse main_content": resiliparse,
}


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Page:
    set: str  # "trafilatura" | "readability" | "gne"
    name: str
    html: str
    url: str | None
    lang: str
    with_: list[str] = field(default_factory=list)
    without: list[str] = field(default_factory=list)
    expected: str = ""


def _read(path: Path, wrapped: bool = False) -> str:
    """A page's text; with `wrapped`, a CleanEval wrapper's `encoding` attribute is passed as the charset, the
    part a crawler gets from the HTTP Content-Type header (the wrapped pages have no other declaration)."""
    data = gzip.decompress(path.read_bytes())
    declared = _WRAPPER_ENCODING.match(data) if wrapped else None
    return decode_html(data, declared.group(1).decode("ascii") if declared else None)


def load_pages() -> list[Page]:
    pages: list[Page] = []
    root = HTML / "trafilatura"
    langs = {row["url"]: row["lang_detected"] for row in map(json.loads, (root / "index.jsonl").open())}
    for url, item in json.loads((root / "evaldata.json").read_text(encoding="utf-8")).items():
        pages.append(
            Page("trafilatura", item["file"], _read(root / "pages" / item["file"]), url, langs.get(url, ""),
                 with_=item.get("with", []), without=item.get("without", []))
        )
    for case in sorted((HTML / "readability" / "test-pages").iterdir()):
        meta = json.loads((case / "expected-metadata.json").read_text(encoding="utf-8"))
        expected = html_to_text(_read(case / "expected.html.gz"))
        lang = (meta.get("lang") or "").split("-")[0].lower() or _guess_lang(expected)
        pages.append(Page("readability", case.name, _read(case / "source.html.gz"), None, lang, expected=expected))
    gne = HTML / "gne_zh_news"
    reference = json.loads((gne / "gne_reference_output.json").read_text(encoding="utf-8"))
    for name, item in sorted(reference.items()):
        content = json.JSONDecoder().raw_decode(item["raw"])[0]["content"]  # "raw": JSON plus trailing text
        pages.append(Page("gne", name, _read(gne / name), None, "zh", expected=content))
    return pages


def _guess_lang(text: str) -> str:
    from curation.langid import identify

    return identify(text[:2000])[0]


# -------------------------------------------------------------------------------------------- scoring


def score(pages: list[Page], outputs: list[str]) -> dict[str, float]:
    """The metrics of one extractor over one group of pages (all from the same set)."""
    if not pages:
        return {}
    if pages[0].set == "trafilatura":
        tp = fn = fp = tn = 0
        for page, out in zip(pages, outputs, strict=True):
            found = sum(s in out for s in page.with_)
            leaked = sum(s in out for s in page.without)
            tp, fn = tp + found, fn + len(page.with_) - found
            fp, tn = fp + leaked, tn + len(page.without) - leaked
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        return {"with": tp / max(1, tp + fn), "without": tn / max(1, tn + fp), "p": p, "r": r,
                "f1": 2 * p * r / (p + r) if p + r else 0.0}
    triples = [prf(out, page.expected) for page, out in zip(pages, outputs, strict=True)]
    n = len(triples)
    return {"p": sum(t[0] for t in triples) / n, "r": sum(t[1] for t in triples) / n,
            "f1": sum(t[2] for t in triples) / n}


def groups(pages: list[Page]) -> dict[str, list[int]]:
    """Row name -> indices of its pages."""
    out: dict[str, list[int]] = {}
    for label, keep in (
        ("trafilatura set, all", lambda p: p.set == "trafilatura"),
        ("trafilatura set, en", lambda p: p.set == "trafilatura" and p.lang == "en"),
        ("readability set, all", lambda p: p.set == "readability"),
        ("readability set, en", lambda p: p.set == "readability" and p.lang == "en"),
        ("GNE zh news (chars)", lambda p: p.set == "gne"),
    ):
        out[label] = [i for i, p in enumerate(pages) if keep(p)]
    return out


def run(extractor: Callable[[str, str | None], str], pages: list[Page]) -> tuple[list[str], float]:
    outputs = []
    start = time.process_time()
    for page in pages:
        outputs.append(extractor(page.html, page.url) or "")
    return outputs, time.process_time() - start


# ------------------------------------------------------------------- held-out sets, frozen split by site

WCEB = HTML / "wceb"
NEWS = WCEB / "l3s-gn1"
DRAGNET = WCEB / "dragnet"
ZH = HTML / "zh_extraction" / "chinese_web_content_extraction"
# Set name -> its folders. CleanEval's own dev/final cut is ignored: every page goes through the same split by site.
HELD_OUT: dict[str, tuple[Path, ...]] = {
    "news": (NEWS,),
    "dragnet": (DRAGNET,),
    "cleaneval": (WCEB / "cleaneval" / "dev", WCEB / "cleaneval" / "final", WCEB / "cleanportaleval"),
    "zh": (ZH,),
}
NEWS_PEERS = ("trafilatura favor_precision", "trafilatura default", "readability-lxml")
# CleanEval wraps each page in `<text id="URL" ...>` ... `</text>`; WCEB strips it before extraction, so do we.
_WRAPPER_ENCODING = re.compile(rb'\s*<text\b[^>]*?\bencoding="([\w.:-]+)"')
_WRAPPER = re.compile(r"^\s*<text\b[^>]*>|</text>\s*$", re.IGNORECASE)


def load_news(split: str, folders: tuple[Path, ...] = (NEWS,)) -> list[Page]:
    """Pages with gold plain text (WCEB sets: `plaintext`; the Chinese set: `articleBody`) of one part of the
    frozen split by site (`bench.splits`), so that no site's template is in both parts. A page without a URL in
    its index gets its canonical link or og:url as its site, else it stands alone."""
    from bench.splits import site_key, split_of  # noqa: PLC0415 -- bench code

    pages = []
    for folder in folders:
        gold = {row["id"]: row.get("plaintext", row.get("articleBody")) for row in _gold_rows(folder)}
        for row in map(json.loads, (folder / "index.jsonl").open()):
            html = _WRAPPER.sub("", _read(folder / row["page"], wrapped=True))
            url = row.get("url") or _canonical(html)
            key = site_key(url) if url else f"{folder.name}#{row['id']}"
            if split_of(key) == split and gold.get(row["id"]) is not None:
                lang = "zh" if folder == ZH else "en"
                pages.append(Page("news", row["id"], html, row.get("url"), lang, expected=gold[row["id"]]))
    return pages


def _gold_rows(folder: Path) -> list[dict]:
    path = folder / "ground-truth.jsonl.gz"
    lines = gzip.open(path, "rt", encoding="utf-8") if path.exists() else (folder / "ground-truth.jsonl").open()
    return [json.loads(line) for line in lines]


def _canonical(html: str) -> str | None:
    root = extract_module._parse(html)
    found = extract_module._CANONICAL(root) if root is not None else []
    return next((u.strip() for u in found if "//" in u), None)


def news_report(splits: tuple[str, ...], show: int, folders: tuple[Path, ...] = (NEWS,)) -> None:
    """Token P/R/F1 (mean over pages) and pages per CPU-second of ours against trafilatura and readability-lxml,
    per split; then the dev pages where ours loses most F1 to favor_precision (never test pages)."""
    names = ["lmpipe extract_text", *NEWS_PEERS]
    print("| split | pages | extractor | P | R | F1 | pages/CPU-s | speed vs favor_precision |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for split in splits:
        pages = load_news(split, folders)
        outputs, speed, triples = {}, {}, {}
        for name in names:
            EXTRACTORS[name](pages[0].html, pages[0].url)  # warm-up
            outputs[name], cpu = run(EXTRACTORS[name], pages)
            speed[name] = len(pages) / cpu
            triples[name] = [prf(o, p.expected) for o, p in zip(outputs[name], pages, strict=True)]
        for name in names:
            p, r, f1 = (sum(t[k] for t in triples[name]) / len(pages) for k in range(3))
            print(f"| {split} | {len(pages)} | {name} | {p:.3f} | {r:.3f} | {f1:.3f} | {speed[name]:.1f} | "
                  f"{speed[name] / speed[NEWS_PEERS[0]]:.2f}x |")
        if split == "dev" and show:
            ours_, peer = triples[names[0]], triples[NEWS_PEERS[0]]
            worst = sorted(range(len(pages)), key=lambda i: ours_[i][2] - peer[i][2])[:show]
            for i in worst:
                print(f"* {pages[i].url or pages[i].name}: ours P {ours_[i][0]:.2f} R {ours_[i][1]:.2f}, "
                      f"favor_precision P {peer[i][0]:.2f} R {peer[i][1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 4th page only")
    parser.add_argument("--only", nargs="*", help="extractor names to run (default: all)")
    parser.add_argument("--split", action="store_true", help="split-half check of ours (odd/even pages)")
    parser.add_argument("--fallback", choices=extract_module.FALLBACKS,
                        help=f"our extractor's fallback engine (default {extract_module.FALLBACK}); with --split, "
                        "also our F1 on the pages that reach the fallback under every choice")
    parser.add_argument("--news", action="store_true", help="only the L3S-GN1 English news pages, dev part of the "
                        "frozen split by site, ours vs trafilatura (~2 min)")
    parser.add_argument("--dragnet", action="store_true", help="as --news, on WCEB's Dragnet English article pages "
                        "(1,381; news and blogs of 2012)")
    parser.add_argument("--cleaneval", action="store_true", help="as --news, on WCEB's CleanEval and CleanPortalEval "
                        "English pages (810; mixed web pages of 2007 and portal news of 2013)")
    parser.add_argument("--zh", action="store_true", help="as --news, on the 65 Chinese pages with hand-copied main "
                        "text (2004-05 CleanEval-style pages, 2021-22 news and government sites); characters as tokens")
    parser.add_argument("--test", action="store_true", help="with --news: also the frozen test part (only to report "
                        "a finished change)")
    parser.add_argument("--show", type=int, default=0, help="with --news: list the N dev pages ours loses most on")
    args = parser.parse_args()
    held_out = [name for name in HELD_OUT if getattr(args, name)]
    for name in held_out:
        print(f"\n{name}:\n")
        news_report(("dev", "test") if args.test else ("dev",), args.show, HELD_OUT[name])
    if held_out:
        return
    if args.fallback:
        extract_module.FALLBACK = args.fallback
    if not HTML.is_dir():
        sys.exit(f"{HTML} is absent: this bench needs the shared test pages")
    pages = load_pages()
    if args.quick:
        pages = pages[::4]
    names = [n for n in EXTRACTORS if not args.only or any(o in n for o in args.only)]
    results: dict[str, dict[str, dict[str, float]]] = {}
    speed: dict[str, float] = {}
    outputs_of: dict[str, list[str]] = {}
    for name in names:
        EXTRACTORS[name](pages[0].html, pages[0].url)  # warm-up: imports, lazy tables
        outputs, cpu = run(EXTRACTORS[name], pages)
        outputs_of[name] = outputs
        speed[name] = len(pages) / cpu
        results[name] = {}
        for label, idx in groups(pages).items():
            results[name][label] = score([pages[i] for i in idx], [outputs[i] for i in idx])
        print(f"# {name}: {speed[name]:.1f} pages/s", file=sys.stderr, flush=True)

    print(f"{time.strftime('%Y-%m-%d')} · {platform.machine()}, {len(pages)} pages · "
          f"`.venv/bin/python bench/extract.py` · our fallback: {extract_module.FALLBACK}\n")
    header = "| set | metric | " + " | ".join(names) + " |"
    print(header)
    print("|---|---|" + "---:|" * len(names))
    for label, idx in groups(pages).items():
        metrics = ("with", "without", "p", "r", "f1") if label.startswith("trafilatura") else ("p", "r", "f1")
        for metric in metrics:
            cells = [results[n][label].get(metric, float("nan")) for n in names]
            best = max(cells[1:]) if len(cells) > 1 else cells[0]
            row = " | ".join(f"**{c:.3f}**" if metric == "f1" and c >= best else f"{c:.3f}" for c in cells)
            print(f"| {label} ({len(idx)}) | {metric} | {row} |")
    cells = " | ".join(f"{speed[n]:.1f}" for n in names)
    print(f"| all pages ({len(pages)}) | pages/s, one core | {cells} |")
    if "trafilatura default" in speed and names[0] == "lmpipe extract_text":
        ratios = " | ".join(f"{speed[n] / speed['trafilatura default']:.2f}x" for n in names)
        print(f"| all pages | speed vs trafilatura default | {ratios} |")
    if args.split and names[0] == "lmpipe extract_text":
        print("\nSplit-half check (ours vs best peer, F1 on even / odd pages of each row):\n")
        print("| set | half | lmpipe | best peer | peer |")
        print("|---|---|---:|---:|---|")
        for label, idx in groups(pages).items():
            for half, part in (("even", idx[0::2]), ("odd", idx[1::2])):
                sub = [pages[i] for i in part]
                f1 = {n: score(sub, [outputs_of[n][i] for i in part])["f1"] for n in names}
                peer = max(names[1:], key=lambda n: f1[n])
                print(f"| {label} | {half} ({len(part)}) | {f1[names[0]]:.3f} | {f1[peer]:.3f} | {peer} |")
        fallback_table(pages)


def fallback_table(pages: list[Page]) -> None:
    """Our F1 under each fallback engine, on the pages where our scorer finds < 250 chars (the only pages
    where the choice matters) and on the whole set; plus CPU seconds spent on those pages."""
    # With no fallback, a page reaches the fallback iff our scorer's text is < 250 chars (or empty: the
    # "page" stub rule then fills it); every other page's text is the same under every choice.
    firsts = [extract_module.extract_document(p.html, p.url, fallback="none") for p in pages]
    hit = [i for i, p in enumerate(pages) if (len(firsts[i].text) < 250 or firsts[i].engine != "lmpipe")
           and len(p.html) <= extract_module.FALLBACK_MAX_CHARS]
    print(f"\nFallback engines ({len(hit)} pages reach the fallback; F1 on those pages / on the whole row; CPU s "
          "on those pages):\n")
    print("| set | fallback pages | " + " | ".join(extract_module.FALLBACKS) + " |")
    print("|---|---:|" + "---|" * len(extract_module.FALLBACKS))
    outputs: dict[str, list[str]] = {}
    cpu: dict[str, float] = {}
    for mode in extract_module.FALLBACKS:
        start = time.process_time()
        outputs[mode] = [extract_module.extract_document(pages[i].html, pages[i].url, fallback=mode).text
                         for i in hit]
        cpu[mode] = time.process_time() - start
    for label, idx in groups(pages).items():
        sub = [i for i in idx if i in hit]
        cells = []
        for mode in extract_module.FALLBACKS:
            by_page = dict(zip(hit, outputs[mode], strict=True))
            whole = score([pages[i] for i in idx], [by_page.get(i, firsts[i].text) for i in idx])["f1"]
            part = score([pages[i] for i in sub], [by_page[i] for i in sub])["f1"] if sub else float("nan")
            cells.append(f"{part:.3f} / {whole:.3f}")
        print(f"| {label} | {len(sub)} | " + " | ".join(cells) + " |")
    print("| CPU s on those pages | | " + " | ".join(f"{cpu[m]:.2f}" for m in extract_module.FALLBACKS) + " |")


if __name__ == "__main__":
    main()
