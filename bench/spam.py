"""Chinese web-spam filter (`curation.spam`): precision, recall per category, false-positive rate on clean zh
text, and its speed against the filter stage's other steps, on the data in ../shared/data.

Data (rebuilt from ../shared on every run; nothing of it is stored in the repo):

* Labelled web documents: every Chinese page of the WARC samples and of the HTML sets (main text and title
  extracted by `curation.extract`, language by `curation.langid`), plus ChineseWebText's clean/dirty sample.
  Their hand labels are in `curation/spam_data/labels.jsonl`, keyed by source and record (URL or file), with a
  digest of the extracted text: `spam` + category, `clean`, or `ambiguous` (left out of the figures).
* Clean reference text (FPR): CMRC2018 Wikipedia paragraphs, the happy-llm textbook (one document per file),
  LLMBox's Chinese prose lines, ChnSentiCorp hotel and waimai reviews, lingua's Chinese test sentences (news
  and web sentences), the Alpaca-zh instructions with their answers, and in Traditional script the train/dev
  sentences of UD Chinese-GSD (zh-Hant) and Classical Chinese-Kyoto, and the 300 Tang poems: clean by source.

Split (`bench/splits.py`): web documents by site (`site_key` of the URL, or the HTML set's site folder), corpus
documents by `doc_key(file, index)`; thresholds are tuned on `dev` only, `test` is frozen.

    .venv/bin/python bench/spam.py            # ~80 s here: tables for dev and test, then speed
    .venv/bin/python bench/spam.py --errors   # also list the misclassified documents of dev
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.splits import doc_key, site_key, split_of  # noqa: E402
from curation import filters, pii, spam  # noqa: E402
from curation.config import FilterConfig  # noqa: E402
from curation.extract import extract  # noqa: E402
from curation.langid import identify  # noqa: E402
from curation.readers import read_records  # noqa: E402

DATA = REPO.parent / "shared" / "data"
LABELS = REPO / "curation" / "spam_data" / "labels.jsonl"
WARCS = ["cc-main-2020-34-sample.warc.gz", "cc_net-sample-wet.warc.txt", "whirlwind-cc-main-2024-22.warc.gz"]
HTML_SETS = ["gne_zh_news", "readability", "trafilatura", "zh_extraction"]
CWT = "quality/chinesewebtext_fasttext_quality"
# Clean reference text: (file, kind). Reviews are short: the filter stage drops < 100 characters anyway, but
# colloquial text is where a lexicon of 色/赌 words would misfire, so they are measured too.
CLEAN = [("text/zh/cmrc2018_wikipedia_contexts.jsonl", "jsonl"), ("text/zh/happy-llm", "md"),
         ("text/zh/llmbox_chinese.txt", "lines"), ("text/zh/sophonplus_ChnSentiCorp_htl_all.csv", "csv"),
         ("text/zh/sophonplus_waimai_10k.csv", "csv"), ("lid/lingua_testdata/sentences/zh.txt", "lines"),
         ("sft/llamafactory_alpaca_zh_demo.json", "alpaca"), ("lid/ud_dev/ud_train_dev_sentences.tsv", "ud"),
         ("text/zh/chinese-poetry/全唐诗/唐诗三百首.json", "poems")]


@dataclass(frozen=True)
class Doc:
    source: str  # file or set under ../shared/data
    key: str  # record within it: URL or page file
    site: str
    title: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.blake2b(self.text.encode("utf-8"), digest_size=8).hexdigest()

    @property
    def split(self) -> str:
        return split_of(self.site)


def _zh(text: str) -> bool:
    return bool(text) and identify(text)[0] == "zh"


def _html_pages() -> Iterator[tuple[str, str, str, Path]]:
    """(set, key, site, page file) of every HTML page of the Chinese-bearing sets."""
    html = DATA / "html"
    for page in sorted((html / "gne_zh_news" / "pages").glob("*/*.html.gz")):
        yield "gne_zh_news", str(page.relative_to(html)), f"gne:{page.parent.name}", page
    for page in sorted((html / "readability" / "test-pages").glob("*/source.html.gz")):
        yield "readability", str(page.relative_to(html)), f"readability:{page.parent.name}", page
    for name in ("trafilatura/index.jsonl", "zh_extraction/chinese_web_content_extraction/index.jsonl"):
        index = html / name
        for line in index.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            page = index.parent / (row.get("file") or row["page"])
            site = site_key(row["url"]) if row.get("url") else f"{name.split('/')[0]}:{page.name}"
            yield name.split("/")[0], str(page.relative_to(html)), site, page


@lru_cache(maxsize=2)
def web_documents(split: str | None = None) -> tuple[Doc, ...]:
    """Every Chinese web document of ../shared/data that the labels file covers (see the module docstring), or
    those of one split (chosen by site before extraction, so a test of the frozen split stays quick)."""
    def wanted(site: str) -> bool:
        return split is None or split_of(site) == split

    docs = []
    for name in WARCS:
        for record in read_records(DATA / "warc" / name):
            if not wanted(site_key(record["url"] or "")):
                continue
            if record["kind"] == "html":
                text, title = extract(record["content"], record["url"], record["charset"])
            else:
                text, title = record["content"], record.get("title") or ""
            if _zh(text):
                url = record["url"] or ""
                docs.append(Doc(f"warc/{name}", url, site_key(url), title, text))
    for html_set, key, site, page in _html_pages():
        if not wanted(site):
            continue
        with gzip.open(page) as fh:
            text, title = extract(fh.read())
        if _zh(text):
            docs.append(Doc(f"html/{html_set}", key, site, title, text))
    for part in ("clean", "dirty"):
        for i, line in enumerate((DATA / CWT / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()):
            text = json.loads(line)["text"]
            if wanted(doc_key(f"cwt-{part}", i)) and _zh(text):
                docs.append(Doc(f"{CWT}/{part}.jsonl", str(i), doc_key(f"cwt-{part}", i), "", text))
    return tuple(docs)


def clean_documents(split: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(file, split, text) of the clean reference text (of one split, or all)."""
    for name, kind in CLEAN:
        path = DATA / name
        if kind == "jsonl":
            texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
        elif kind == "md":
            texts = [p.read_text(encoding="utf-8") for p in sorted(path.glob("*.md"))]
        elif kind == "lines":
            texts = path.read_text(encoding="utf-8").splitlines()
        elif kind == "ud":  # the Traditional-script treebanks: zh-Hant (modern) and lzh (Classical)
            with path.open(encoding="utf-8", newline="") as fh:
                texts = [row["text"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                         if "Hant" in row["treebank"]]
        elif kind == "poems":
            texts = ["".join(poem["paragraphs"]) for poem in json.loads(path.read_text(encoding="utf-8"))]
        elif kind == "alpaca":  # instruction, input and answer as one document
            texts = ["\n".join(filter(None, (r["instruction"], r["input"], r["output"])))
                     for r in json.loads(path.read_text(encoding="utf-8"))]
        else:
            with path.open(encoding="utf-8", newline="") as fh:
                texts = [row["review"] for row in csv.DictReader(fh)]
        for i, text in enumerate(texts):
            part = split_of(doc_key(name, i))
            if text.strip() and split in (None, part):
                yield name, part, text


def labels() -> dict[tuple[str, str], dict]:
    """(source, key) -> label row."""
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(row["source"], row["key"]): row for row in rows}


def labelled(split: str | None = None) -> tuple[list[tuple[Doc, dict]], list[Doc], int]:
    """(documents with their label, documents without one, labels whose text digest changed), of one split or
    all."""
    table = labels()
    found, unlabelled, stale = [], [], 0
    for doc in web_documents(split):
        row = table.get((doc.source, doc.key))
        if row is None:
            unlabelled.append(doc)
            continue
        stale += row["digest"] != doc.digest
        found.append((doc, row))
    return found, unlabelled, stale


def _predict(title: str, text: str, min_score: float, min_density: float) -> str | None:
    return spam.classify(text, title or None, min_score, min_density)


@dataclass
class Counts:
    """Outcomes on one split."""

    tp: int = 0
    fn: int = 0
    fp_web: int = 0
    clean_web: int = 0
    fp_ref: int = 0
    clean_ref: int = 0

    def row(self, name: str) -> str:
        spam_docs, fp = self.tp + self.fn, self.fp_web + self.fp_ref
        precision = f"{self.tp / (self.tp + fp):.2f}" if self.tp + fp else "-"
        fpr = 100 * fp / max(1, self.clean_web + self.clean_ref)
        return (f"| {name} | {spam_docs} | {self.tp} | {self.tp / max(1, spam_docs):.2f} | {precision} | "
                f"{self.clean_web} | {self.fp_web} | {self.clean_ref} | {self.fp_ref} | {fpr:.3f}% |")


HEADER = ["| split | spam docs | caught | recall | precision | clean web docs | FP web | clean ref docs | FP ref | "
          "FPR (web + ref) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]


def evaluate(docs: list[tuple[Doc, dict]], ref: list[tuple[str, str, str]], min_score: float, min_density: float,
             use_title: bool = True, errors: list[str] | None = None) -> tuple[dict[str, Counts], Counter]:
    """Counts per split, and (split, category, caught) counts of the spam documents."""
    counts = {"dev": Counts(), "test": Counts()}
    per_category: Counter[tuple[str, str, bool]] = Counter()
    for doc, row in docs:
        if row["label"] == "ambiguous":
            continue
        hit = _predict(doc.title if use_title else "", doc.text, min_score, min_density)
        c = counts[doc.split]
        if row["label"] == "spam":
            c.tp, c.fn = c.tp + bool(hit), c.fn + (not hit)
            per_category[doc.split, row["category"], bool(hit)] += 1
        else:
            c.fp_web, c.clean_web = c.fp_web + bool(hit), c.clean_web + 1
        if errors is not None and doc.split == "dev" and bool(hit) != (row["label"] == "spam"):
            errors.append(f"{row['label']} {doc.source} {doc.key} -> {hit}: {doc.title[:40]!r}")
    for name, split, text in ref:
        hit = _predict("", text, min_score, min_density)
        c = counts[split]
        c.fp_ref, c.clean_ref = c.fp_ref + bool(hit), c.clean_ref + 1
        if hit and errors is not None and split == "dev":
            errors.append(f"FP ref {name} {hit}: {text[:80]!r}")
    return counts, per_category


def quality_tables(cfg: FilterConfig, show_errors: bool = False) -> list[str]:
    """Markdown: dev and test figures (with and without page titles), recall per category, a dev sweep."""
    docs, unlabelled, stale = labelled()
    ref = list(clean_documents())
    errors: list[str] = []
    counts, per_category = evaluate(docs, ref, cfg.spam_min_score, cfg.spam_min_density, True, errors)
    no_title, _ = evaluate(docs, ref, cfg.spam_min_score, cfg.spam_min_density, False)
    out = [*HEADER]
    out += [counts[split].row(split) for split in ("dev", "test")]
    out += [no_title[split].row(f"{split}, no title") for split in ("dev", "test")]
    out += ["", "| split | category | spam docs | caught |", "|---|---|---:|---:|"]
    for split in ("dev", "test"):
        for category in spam.CATEGORIES:
            n = per_category[split, category, True] + per_category[split, category, False]
            if n:
                out.append(f"| {split} | {category} | {n} | {per_category[split, category, True]} |")
    out += ["", "| clean reference file | docs (dev + test) | flagged |", "|---|---:|---:|"]
    per_file: Counter[tuple[str, bool]] = Counter(
        (name, bool(_predict("", text, cfg.spam_min_score, cfg.spam_min_density))) for name, _split, text in ref)
    for name in dict.fromkeys(name for name, _split, _text in ref):
        out.append(f"| {name} | {per_file[name, False] + per_file[name, True]} | {per_file[name, True]} |")
    out += ["", "Dev sweep (min_score x min_density; the default is marked):", "", *HEADER]
    for min_score in (3.0, 4.0, 5.0, 6.0, 8.0):
        for min_density in (0.5, 1.0, 2.0):
            mark = " *" if (min_score, min_density) == (cfg.spam_min_score, cfg.spam_min_density) else ""
            swept, _ = evaluate(docs, ref, min_score, min_density)
            out.append(swept["dev"].row(f"dev {min_score:g} x {min_density:g}{mark}"))
    out += ["", "Margin on dev: the highest-scoring clean documents and the lowest-scoring spam documents "
            "(score, density; thresholds " f"{cfg.spam_min_score:g}, {cfg.spam_min_density:g}):", ""]
    clean_scores = sorted(((spam.score(text), name) for name, split, text in ref if split == "dev"),
                          key=lambda sn: -sn[0].score)[:5]
    out += [f"* clean {r.category} {r.score:g}, {r.density:g} ({name})" for r, name in clean_scores]
    spam_scores = sorted(((spam.score(d.text, d.title or None), d.key) for d, r in docs
                          if r["label"] == "spam" and d.split == "dev"), key=lambda sk: sk[0].score)[:3]
    out += [f"* spam {r.category} {r.score:g}, {r.density:g} ({key})" for r, key in spam_scores]
    ambiguous = [(d, r) for d, r in docs if r["label"] == "ambiguous"]
    out += ["", f"labelled web docs: {len(docs)} ({len(ambiguous)} ambiguous, left out: "
            + ", ".join(f"{d.key} -> {_predict(d.title, d.text, cfg.spam_min_score, cfg.spam_min_density)}"
                        for d, _ in ambiguous)
            + f"); unlabelled zh web docs: {len(unlabelled)}; labels whose text digest changed: {stale}"]
    return out + (["", *errors] if show_errors else [])


def speed_table(cfg: FilterConfig) -> list[str]:
    """Docs per CPU-second of the spam check against the filter stage's other steps, on the same documents."""
    from evals.decontam import index_for  # noqa: PLC0415 -- the stage's decontamination index

    docs = [doc.text for doc in web_documents()]
    docs += [text for _name, _split, text in clean_documents()][:3000]
    no_spam = cfg.model_copy(update={"spam": False})
    contamination = index_for(())
    steps = {
        "spam.classify": lambda t: spam.classify(t),
        "filters.check zh rules (spam off)": lambda t: filters.check(t, "zh", no_spam),
        "pii.scrub": lambda t: pii.scrub(t, cfg.pii.kinds),
        "decontam overlaps": lambda t: contamination.overlaps(t),
    }
    rows = ["| step | docs | CPU s | docs / CPU s | time vs spam.classify |", "|---|---:|---:|---:|---:|"]
    spent = {}
    for name, step in steps.items():
        start = time.process_time()
        for text in docs:
            step(text)
        spent[name] = time.process_time() - start
    for name, seconds in spent.items():
        rows.append(f"| {name} | {len(docs)} | {seconds:.2f} | {len(docs) / max(seconds, 1e-9):,.0f} | "
                    f"{seconds / max(spent['spam.classify'], 1e-9):.2f}x |")
    return rows


def main() -> None:
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: this bench needs ../shared/data")
    cfg = FilterConfig()
    print(f"# spam filter, {time.strftime('%Y-%m-%d')}, {platform.machine()} {platform.processor() or ''}, "
          f"min_score {cfg.spam_min_score}, min_density {cfg.spam_min_density}\n")
    print("\n".join(quality_tables(cfg, "--errors" in sys.argv)))
    print()
    print("\n".join(speed_table(cfg)))


if __name__ == "__main__":
    main()
