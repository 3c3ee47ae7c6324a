"""ROC-AUC of the learned quality scorer on human quality labels, next to simpler peers, in one run.

Run:  .venv/bin/python bench/quality.py [--labels FILE.jsonl] [--bootstrap 2000] [--folds 5] [--seeds 3]

On the DCLM human annotations (`../shared/data/quality/dclm_human_quality`, `{text, label}` JSONL; any file of
that shape can be passed with --labels, e.g. a held-out set) it prints, with a 95 % bootstrap interval:

* lmpipe scorer, k-fold cross-validated: every fitted part that sees labels (combiner, standardisation, and
  the optional label n-gram classifier) is fitted inside each fold; the reference n-gram classifier sees no
  labels, so it is fitted once;
* the shipped default model (`curation.quality.load()`), which was trained on the DCLM labels: in-sample
  there, a fair held-out number only on other label files;
* document length alone (characters); the old heuristic score;
* a plain n-gram classifier alone: ours (hashed uni+bigram logistic regression), DCLM-style (reference text
  vs raw crawl, no labels) and cross-validated on the labels; and real fastText 0.9.2 (the Debian `fasttext`
  CLI, `apt-get install fasttext`; the PyPI wheels fail here: `fasttext-wheel` needs numpy<2,
  `fasttext-numpy2-wheel` trained NaN models, `fasttext-predict` cannot train), same two settings.

It also reports the ChineseWebText clean/dirty sample (20 docs, no cross-validation: nothing is fitted on it),
the happy-llm textbook chapters against its dirty half, and a transfer proxy for clear-cut documents (the DCLM
file here holds only the documents the annotators disagreed on, an independent held-out check the ones they
agreed on): held-out reference text (WikiText-2 validation articles, The Verdict, the CS336 reference page) vs raw
crawl, for the shipped model and for models built by the same recipe with one crawl source left out of their
training, each next to length alone and the n-gram classifier alone (`transfer_rows`).
Last, a table-markup invariance check of the shipped model (`markup_rows`): the scores of texts with each line
wrapped as `| line |`, and of the whole text as one table row `|  | text |  |` (what trafilatura emits for a
layout table), against the plain texts: mean absolute score difference (the words are unchanged, so a
quality score should not move).
First come the shipped plain model's tables (`--plain-only` prints only these): dev-CV / frozen-test /
transfer AUC on a frozen 70/30 split of the labels (`plain_split_rows`, bench/splits.py keys), its scores per
language and text set with the share one mix threshold keeps (`language_rows`), and documents per CPU-second
against a DCLM-style fastText classifier in the same process (`speed_rows`; fastText is trained by
`--fasttext-python`, an interpreter with fasttext-wheel and numpy<2, or the fastText CLI, and predicts through
the `fasttext` module of fasttext-predict).
CV AUCs are the mean over `--seeds` fold assignments; the interval is the bootstrap of the first seed's
out-of-fold scores. The reference texts are the ones the shipped model's command uses (curation.quality).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation import quality  # noqa: E402
from curation.quality_features import plain_stats  # noqa: E402
from curation.quality_linear import bootstrap_auc, roc_auc, stratified_folds  # noqa: E402
from bench.splits import doc_key, split_of  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DCLM = SHARED / "quality" / "dclm_human_quality" / "majority_minus_agreement.jsonl"
ZH = SHARED / "quality" / "chinesewebtext_fasttext_quality"
POSITIVES = [SHARED / "text" / "en" / "llamafactory_wiki_demo.txt",
             SHARED / "text" / "zh" / "cmrc2018_wikipedia_contexts.jsonl"]
NEGATIVES = [*sorted((SHARED / "warc").glob("*.warc.gz")), SHARED / "text" / "en" / "llamafactory_c4_demo.jsonl",
             SHARED / "text" / "en" / "dolma_cc_en_head-0091.jsonl",
             SHARED / "text" / "en" / "dolma_cc_en_head-0174.jsonl"]


# ------------------------------------------------------------------------------------ transfer check
# The DCLM file here holds only the documents the annotators disagreed on (length alone: 0.61); an independent
# held-out check is on the clear-cut ones (length alone ~0.86). A proxy for clear-cut cases from data we have:
# clean reference text that no model here was trained on vs raw crawl text.

WIKITEXT = SHARED / "text" / "en" / "wikitext-2-valid.txt"
VERDICT = SHARED / "text" / "en" / "the-verdict.txt"
CS336 = SHARED / "quality" / "cs336_quality_fixtures"
HAPPY_LLM = SHARED / "text" / "zh" / "happy-llm"
_DETOK = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" , ", ", "), (" . ", ". "), (" ; ", "; "), (" : ", ": "),
          (" 's", "'s"), (" )", ")"), ("( ", "("), ("<unk>", "X"))


def wikitext_articles(path: Path) -> list[str]:
    """WikiText-2 articles (split at ` = Title = ` lines, section lines ` = = Name = = ` kept as `Name`), with
    its tokenisation undone as far as simple replacements go (` @-@ ` → `-`, ` , ` → `, `; `<unk>` → `X`,
    so that `<`/`>` do not count as symbols)."""
    articles: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^ = [^=].* = $", line):
            articles.append([line.strip(" =")])
        elif re.match(r"^ (= )+[^=].* (= )+$", line) and articles:  # " = = Section = = " → "Section"
            articles[-1].append(line.strip(" ="))
        elif line.strip() and articles:
            articles[-1].append(line.strip())
    out = []
    for lines in articles:
        text = "\n".join(lines)
        for a, b in _DETOK:
            text = text.replace(a, b)
        out.append(re.sub(r" \.$", ".", text, flags=re.M))
    return out


def transfer_sets() -> tuple[list[str], dict[str, list[Path]]]:
    """Held-out reference documents (WikiText-2 validation articles, The Verdict in ~4000-character pieces,
    the CS336 Wikipedia-referenced page) and the crawl sources of the shipped model's negatives, by group."""
    ref = wikitext_articles(WIKITEXT) + quality._chunks(VERDICT.read_text(encoding="utf-8"), 4000)
    ref.append((CS336 / "high_quality_wiki_reference.txt").read_text(encoding="utf-8"))
    groups = {"WARC pages": [p for p in NEGATIVES if ".warc" in p.name], "C4": [p for p in NEGATIVES if "c4" in p.name],
              "Dolma CC": [p for p in NEGATIVES if "dolma_cc" in p.name]}
    return ref, groups


def transfer_rows(pos: list[str], labelled: list[str], labels: list[int], n_boot: int) -> list[dict[str, object]]:
    """AUC of reference (1) vs crawl (0) documents.

    * shipped default model on all crawl groups + the CS336 spam page: in-sample for its reference n-gram
      classifier and Chinese combiner (those crawl files are its negatives), not for the label combiner;
    * leave-source-out: for each crawl group, a model built by the shipped recipe without that group among
      its negatives, scored on the reference documents vs that group (nothing it was fitted on); also the
      same recipe without labels (what the quality_model stage fits when no labels are configured).
    Each next to document length alone and the n-gram classifier alone.
    """
    ref_docs, groups = transfer_sets()
    spam = (CS336 / "low_quality_cc.txt").read_text(encoding="utf-8")
    by_group = {g: [t for p in paths for t in quality.read_texts(p)] for g, paths in groups.items()}
    shipped = quality.load()
    rows = []

    def add(name: str, model: quality.QualityModel | quality.PlainModel, crawl: list[str],
            unlabelled: quality.QualityModel | None = None) -> None:
        texts = ref_docs + crawl
        yy = np.array([1.0] * len(ref_docs) + [0.0] * len(crawl))
        tag = f"{len(ref_docs)} ref vs {len(crawl)} {name}"
        rows.append(row(f"{tag}: lmpipe scorer", yy, [np.array(model.score(texts))], n_boot))
        if unlabelled is not None:
            rows.append(row(f"{tag}: lmpipe scorer without labels (reference combiner)", yy,
                            [np.array(unlabelled.score(texts))], n_boot))
        rows.append(row(f"{tag}: document length alone", yy, [np.array([len(t) for t in texts], float)], n_boot))
        if isinstance(model, quality.QualityModel):  # the shipped plain model has no n-gram classifier
            rows.append(row(f"{tag}: n-gram LR alone", yy, [model.ref.logits(texts)], n_boot))

    add("crawl (all groups + CS336 spam), shipped model", shipped, [t for v in by_group.values() for t in v] + [spam])
    for g in groups:
        negatives = [t for h, v in by_group.items() if h != g for t in v]
        model = quality.train(pos, negatives, labelled, labels)
        add(f"{g}, left out of training", model, by_group[g], quality.train(pos, negatives, ref=model.ref))
    return rows


def _fasttext_line(text: str) -> str:
    return " ".join(text.lower().split())  # fastText reads one document per line


class RealFastText:
    """fastText 0.9.2 through its CLI (supervised, word bigrams, one thread for determinism)."""

    def __init__(self) -> None:
        self.exe = shutil.which("fasttext")

    def fit_predict(self, train: list[str], y: list[int], test: list[str]) -> np.ndarray:
        assert self.exe
        with tempfile.TemporaryDirectory() as tmp:
            tr, te, model = Path(tmp) / "train.txt", Path(tmp) / "test.txt", Path(tmp) / "model"
            tr.write_text("".join(f"__label__{'hq' if label else 'lq'} {_fasttext_line(t)}\n"
                                  for t, label in zip(train, y)))
            te.write_text("".join(_fasttext_line(t) + "\n" for t in test))
            subprocess.run([self.exe, "supervised", "-input", str(tr), "-output", str(model), "-wordNgrams", "2",
                            "-epoch", "20", "-lr", "0.5", "-dim", "64", "-thread", "1", "-seed", "0", "-verbose", "0"],
                           check=True, capture_output=True)
            out = subprocess.run([self.exe, "predict-prob", str(model) + ".bin", str(te), "2"],
                                 check=True, capture_output=True, text=True).stdout.splitlines()
        probs = []
        for line in out:
            parts = line.split()
            pairs = dict(zip(parts[::2], map(float, parts[1::2])))
            probs.append(pairs.get("__label__hq", 1.0 - pairs.get("__label__lq", 0.5)))
        return np.array(probs)


DEMO = Path(__file__).resolve().parent.parent / "demo" / "text"


def wrap_lines(text: str) -> str:
    """Each line of `text` as a one-cell Markdown table row."""
    return "\n".join(f"| {line} |" for line in text.splitlines())


def wrap_row(text: str) -> str:
    """The whole text as one table row with empty side cells (trafilatura's output for a layout table)."""
    return "|  | " + " ".join(text.split()) + " |  |"


def markup_rows(model: quality.QualityModel, sets: dict[str, list[str]]) -> str:
    """Table: per text set, mean score, and mean / max |score(markup) - score(plain)| for `wrap_lines` and
    `wrap_row`; the one-row text also against the same words on one line without pipes (markup alone)."""
    lines = ["**Table-markup invariance of the shipped model** (mean absolute score change; words unchanged)", "",
             "| texts | n | mean score | each line `\\| line \\|`: MAD (max) | one row: MAD vs plain | "
             "one row vs one line without pipes: MAD |", "|---|---|---|---|---|---|"]
    for name, texts in sets.items():
        plain, wrapped, one_row, one_line = (np.array(model.score(ts)) for ts in (
            texts, [wrap_lines(t) for t in texts], [wrap_row(t) for t in texts], [" ".join(t.split()) for t in texts]))
        d = np.abs(wrapped - plain)
        lines.append(f"| {name} | {len(texts)} | {plain.mean():.3f} | {d.mean():.3f} ({d.max():.3f}) | "
                     f"{np.abs(one_row - plain).mean():.3f} | {np.abs(one_row - one_line).mean():.3f} |")
    return "\n".join(lines)


def cv_scores(texts: list[str], y: np.ndarray, fit_predict, folds: int, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.zeros(len(y))
    for fold in stratified_folds(y, folds, seed):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        out[fold] = fit_predict([texts[i] for i in rest], [int(y[i]) for i in rest], [texts[i] for i in fold])
    return out


def row(name: str, y: np.ndarray, scores: list[np.ndarray], n_boot: int) -> dict[str, object]:
    aucs = [roc_auc(y, s) for s in scores]
    lo, hi = bootstrap_auc(y, scores[0], n_boot)
    return {"scorer": name, "auc": float(np.mean(aucs)), "lo": lo, "hi": hi,
            "spread": float(np.std(aucs)) if len(aucs) > 1 else None}


def table(rows: list[dict[str, object]], title: str, n: str) -> str:
    lines = [f"**{title}** ({n})", "", "| scorer | ROC-AUC | 95% bootstrap CI | sd over CV seeds |",
             "|---|---|---|---|"]
    for r in rows:
        if r.get("note"):
            lines.append(f"| {r['scorer']} | n/a | {r['note']} | |")
            continue
        sd = f"{r['spread']:.3f}" if r["spread"] is not None else ""
        lines.append(f"| {r['scorer']} | {r['auc']:.3f} | {r['lo']:.3f}-{r['hi']:.3f} | {sd} |")
    return "\n".join(lines)



# ------------------------------------------------------------ plain model: frozen split, languages, speed
# The shipped scorer (`quality.PlainModel`). Its recipe (statistics, squares, L2) was chosen by repeated CV on
# the dev part of a frozen split of the DCLM labels (bench/splits.py: key = file name + line index, 30 % test);
# the test part is scored once by a model fitted on dev only.

def frozen_split(n: int, name: str = DCLM.name) -> np.ndarray:
    """True for the documents in the frozen test part (bench/splits.py)."""
    return np.array([split_of(doc_key(name, i)) == "test" for i in range(n)])


def repeated_cv(texts: list[str], y: np.ndarray, fit_score, reps: int = 10, folds: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Mean out-of-fold ROC-AUC over `reps` fold assignments."""
    aucs = []
    for seed in range(reps):
        out = np.zeros(len(y))
        for fold in stratified_folds(y, folds, 100 + seed):
            rest = np.setdiff1d(np.arange(len(y)), fold)
            out[fold] = fit_score([texts[i] for i in rest], y[rest], [texts[i] for i in fold])
        aucs.append(roc_auc(y, out))
    return float(np.mean(aucs))


def plain_split_rows(texts: list[str], y: np.ndarray, l2s: tuple[float, ...] = (0.3, 1.0, 3.0)) -> str:
    """Markdown table: dev-CV, frozen-test and transfer AUC of the plain model at several L2 penalties, and of
    document length alone."""
    test = frozen_split(len(texts))
    dev_t, dev_y = [t for t, s in zip(texts, test) if not s], y[~test]
    test_t, test_y = [t for t, s in zip(texts, test) if s], y[test]
    ref_docs, groups = transfer_sets()
    crawl = {g: [t for p in paths for t in quality.read_texts(p)] for g, paths in groups.items()}
    crawl["WARC pages"] = [t for t in crawl["WARC pages"] if plain_stats(t)[-1] < 0.3]  # English pages only
    lines = [f"**Plain model on a frozen split of the DCLM labels** (dev {len(dev_t)} docs: 10x repeated 5-fold "
             f"CV; test {len(test_t)} docs: fitted on dev, scored once; transfer: fitted on dev, "
             f"{len(ref_docs)} held-out reference docs vs each crawl source)", "",
             "| scorer | dev CV | frozen test (95% CI) | transfer " + " | ".join(crawl) + " |",
             "|---|---|---|" + "---|" * len(crawl)]

    def add(name: str, fit_score) -> None:  # type: ignore[no-untyped-def]
        cv = repeated_cv(dev_t, dev_y, fit_score)
        s = fit_score(dev_t, dev_y, test_t)
        lo, hi = bootstrap_auc(test_y, s, 1000)
        tr = [roc_auc(np.r_[np.ones(len(ref_docs)), np.zeros(len(c))], fit_score(dev_t, dev_y, ref_docs + c))
              for c in crawl.values()]
        lines.append(f"| {name} | {cv:.3f} | {roc_auc(test_y, s):.3f} ({lo:.2f}-{hi:.2f}) | "
                     + " | ".join(f"{a:.3f}" for a in tr) + " |")

    for l2 in l2s:
        add(f"plain statistics + squares, L2 {l2}" + (" (shipped)" if l2 == quality.PLAIN_L2 else ""),
            lambda tr, yy, te, l2=l2: np.array(quality.train_plain(tr, list(map(int, yy)), None, l2).score(te)))
    add("document length alone", lambda tr, yy, te: np.array([len(t) for t in te], float))
    return "\n".join(lines)


def language_rows(texts: list[str], labels: list[int], threshold: float = 0.5) -> str:
    """Markdown table: score distribution per language and text set, for a model whose language shift was
    fitted on the dev halves of the clean Wikipedia files (bench/splits.py keys), evaluated on the test halves
    and on other texts; share of documents a single mix threshold keeps."""
    halves: dict[str, dict[str, list[str]]] = {"dev": {}, "test": {}}
    for lang, path in (("en", POSITIVES[0]), ("zh", POSITIVES[1])):
        for i, t in enumerate(quality.read_texts(path)):
            pieces = quality._chunks(t, quality.CLEAN_PIECE_CHARS)
            halves[split_of(doc_key(path.name, i))].setdefault(lang, []).extend(pieces)
    model = quality.train_plain(texts, labels, halves["dev"])
    warc = [t for p in NEGATIVES if ".warc" in p.name for t in quality.read_texts(p)]
    zh_cwt = {n: [json.loads(line)["text"] for line in (ZH / f"{n}.jsonl").read_text(encoding="utf-8").splitlines()
                  if line.strip()] for n in ("clean", "dirty")} if (ZH / "clean.jsonl").exists() else {}
    sets = {
        "en: Wikipedia pieces, test half (clean)": halves["test"]["en"],
        "zh: Wikipedia paragraphs, test half (clean)": halves["test"]["zh"],
        "en: WikiText-2 articles (clean)": wikitext_articles(WIKITEXT),
        "en: demo/text/en_c4.jsonl (crawl)": quality.read_texts(DEMO / "en_c4.jsonl"),
        "zh: demo/text/zh_wiki_cmrc2018.jsonl (clean)": quality.read_texts(DEMO / "zh_wiki_cmrc2018.jsonl"),
        "en: WARC pages (crawl)": [t for t in warc if plain_stats(t)[-1] < 0.3],
        "zh: WARC pages (crawl)": [t for t in warc if plain_stats(t)[-1] >= 0.3],
        **{f"zh: ChineseWebText {n}": ts for n, ts in zh_cwt.items()},
    }
    lines = [f"**Scores per language** (language shift fitted on the dev halves: zh {model.shift['zh']:+.2f} "
             f"logits; mix threshold {threshold})", "",
             "| texts | n | median | 10th-90th percentile | kept at threshold |", "|---|---|---|---|---|"]
    for name, ts in sets.items():
        s = np.array(model.score(ts))
        lines.append(f"| {name} | {len(ts)} | {np.median(s):.3f} | {np.percentile(s, 10):.3f}-"
                     f"{np.percentile(s, 90):.3f} | {(s >= threshold).mean():.0%} |")
    return "\n".join(lines)


def speed_rows(texts: list[str], pos: list[str], neg: list[str], fasttext_python: str | None) -> str:
    """Markdown table: documents per CPU-second (process time, best of 3) of the shipped plain model and of a
    DCLM-style fastText classifier (reference vs crawl, word bigrams) predicting the same documents."""
    def rate(fn) -> float:  # type: ignore[no-untyped-def]
        best = min(_cpu(fn) for _ in range(3))
        return len(texts) / best

    model = quality.load()
    ours = rate(lambda: model.score(texts))
    lines = [f"**Throughput** ({len(texts)} docs, mean {np.mean([len(t) for t in texts]):.0f} characters; "
             "documents per CPU-second, same process, best of 3)", "",
             "| scorer | docs / CPU-s | ratio to fastText |", "|---|---|---|"]
    ft = _fasttext_model(pos, neg, fasttext_python)
    if ft is None:
        lines.append(f"| shipped plain model | {ours:.0f} | fastText not available (see --fasttext-python) |")
        return "\n".join(lines)
    peer = rate(lambda: [ft.predict(_fasttext_line(t), k=2) for t in texts])
    lines.append(f"| shipped plain model (`quality.load().score`) | {ours:.0f} | {ours / peer:.2f} |")
    lines.append(f"| fastText 0.9.2 predict (DCLM-style: dim 64, word bigrams) | {peer:.0f} | 1.00 |")
    return "\n".join(lines)


def _cpu(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    fn()
    return time.process_time() - start


def _fasttext_model(pos: list[str], neg: list[str], python: str | None):  # type: ignore[no-untyped-def]
    """A fastText model trained on reference (hq) vs crawl (lq) text, loaded with the `fasttext` module here
    (`fasttext-predict` predicts with numpy 2); trained by `python` (an interpreter with fasttext-wheel and
    numpy<2, e.g. a separate venv) or the `fasttext` CLI. None when neither is there."""
    try:
        import fasttext
    except ImportError:
        return None
    tmp = Path(tempfile.mkdtemp())
    data, out = tmp / "train.txt", tmp / "model"
    data.write_text("".join(f"__label__{lab} {_fasttext_line(t)}\n" for lab, ts in (("hq", pos), ("lq", neg))
                            for t in ts), encoding="utf-8")
    if python:
        code = ("import fasttext, sys; fasttext.train_supervised(sys.argv[1], wordNgrams=2, dim=64, epoch=20, "
                "lr=0.5, thread=1, seed=0, verbose=0).save_model(sys.argv[2])")
        subprocess.run([python, "-c", code, str(data), f"{out}.bin"], check=True, capture_output=True)
    elif shutil.which("fasttext"):
        subprocess.run(["fasttext", "supervised", "-input", str(data), "-output", str(out), "-wordNgrams", "2",
                        "-epoch", "20", "-lr", "0.5", "-dim", "64", "-thread", "1", "-seed", "0", "-verbose", "0"],
                       check=True, capture_output=True)
    else:
        return None
    model = fasttext.load_model(f"{out}.bin")
    shutil.rmtree(tmp)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", default=str(DCLM), help="JSONL {text, label} (default: DCLM human labels)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3, help="fold assignments averaged for the CV rows")
    ap.add_argument("--transfer-only", action="store_true", help="only the transfer-proxy table")
    ap.add_argument("--plain-only", action="store_true",
                    help="only the shipped plain model's tables (frozen split, languages, throughput)")
    ap.add_argument("--fasttext-python", help="a Python with fasttext-wheel (numpy<2) to train the fastText peer")
    args = ap.parse_args()
    if not Path(args.labels).exists():
        print(f"labels not found: {args.labels} (shared data absent?)")
        return 1
    start = time.perf_counter()
    texts, labels = quality.read_labels(args.labels)
    y = np.array(labels, dtype=float)
    params = quality.TrainParams()
    pos = [t for p in POSITIVES for t in quality.read_texts(p)]
    neg = [t for p in NEGATIVES for t in quality.read_texts(p)]
    print(plain_split_rows(texts, y))
    print()
    print(language_rows(texts, labels))
    print()
    demo = [t for f in ("en_c4", "zh_wiki_cmrc2018") for t in quality.read_texts(DEMO / f"{f}.jsonl")]
    print(speed_rows(texts + demo, pos, neg, args.fasttext_python))
    if args.plain_only:
        return 0
    print()
    if not args.transfer_only:
        ref = quality.fit_reference(pos, neg, params)
        seeds = range(args.seeds)
        n_boot = args.bootstrap

        def ours_ngram_cv(train: list[str], yy: list[int], test: list[str]) -> np.ndarray:
            return (quality.NgramLogit.fit(train, np.array(yy, float), params.buckets, params.label_ngram_l2)
                    .logits(test))

        rows = [
            row(f"lmpipe scorer, {args.folds}-fold CV", y,
                [quality.cross_validated_scores(texts, labels, pos, neg, params, args.folds, s, ref) for s in seeds],
                n_boot),
            row("lmpipe scorer + label n-gram classifier, CV", y,
                [quality.cross_validated_scores(texts, labels, pos, neg, quality.TrainParams(label_ngrams=True),
                                                args.folds, s, ref) for s in seeds], n_boot),
            row("shipped default model (in-sample on DCLM labels)", y, [np.array(quality.load().score(texts))], n_boot),
            row("document length alone (characters)", y, [np.array([len(t) for t in texts], float)], n_boot),
            row("old heuristic score", y, [np.array([quality.heuristic_score(t) for t in texts])], n_boot),
            row("our n-gram LR alone, reference vs crawl (no labels)", y, [ref.logits(texts)], n_boot),
            row("our n-gram LR alone, CV on labels", y,
                [cv_scores(texts, y, ours_ngram_cv, args.folds, s) for s in seeds], n_boot),
        ]
        ft = RealFastText()
        if ft.exe:
            ref_texts = pos + neg
            ref_y = [1] * len(pos) + [0] * len(neg)
            rows.append(row("real fastText alone, reference vs crawl (no labels)", y,
                            [ft.fit_predict(ref_texts, ref_y, texts)], n_boot))
            rows.append(row("real fastText alone, CV on labels", y,
                            [cv_scores(texts, y, ft.fit_predict, args.folds, s) for s in seeds], n_boot))
        else:
            rows.append({"scorer": "real fastText", "note": "CLI not installed (apt-get install fasttext)"})
        print(table(rows, f"Human quality labels: {Path(args.labels).name}",
                    f"{len(y)} docs, {int(y.sum())} high / {int(len(y) - y.sum())} low"))

        if (ZH / "clean.jsonl").exists():
            zh = [json.loads(line)["text"] for name in ("clean", "dirty")
                  for line in (ZH / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
            zy = np.array([1.0] * 10 + [0.0] * (len(zh) - 10))
            zrows = [
                row("shipped default model", zy, [np.array(quality.load().score(zh))], n_boot),
                row("document length alone (characters)", zy, [np.array([len(t) for t in zh], float)], n_boot),
                row("old heuristic score", zy, [np.array([quality.heuristic_score(t) for t in zh])], n_boot),
                row("our n-gram LR alone, reference vs crawl", zy, [ref.logits(zh)], n_boot),
            ]
            print()
            print(table(zrows, "ChineseWebText clean vs dirty sample", f"{len(zh)} docs; nothing fitted on them"))
            happy = [p.read_text(encoding="utf-8") for p in sorted(HAPPY_LLM.glob("*.md"))]
            if happy:
                dirty = zh[10:]
                hy = np.array([1.0] * len(happy) + [0.0] * len(dirty))
                hrows = [row("shipped default model", hy, [np.array(quality.load().score(happy + dirty))], n_boot),
                         row("document length alone (characters)", hy,
                             [np.array([len(t) for t in happy + dirty], float)], n_boot)]
                print()
                print(table(hrows, "happy-llm textbook chapters (Markdown with HTML/code; evaluation only, "
                            "CC BY-NC-SA) vs the ChineseWebText dirty sample", f"{len(happy)} vs {len(dirty)} docs"))
    if WIKITEXT.exists():
        print()
        print(table(transfer_rows(pos, texts, labels, args.bootstrap),
                    "Transfer proxy: held-out reference text vs raw crawl",
                    "clear-cut cases; label combiner fitted on the DCLM labels"))
    sets = {"DCLM labelled docs": texts}
    for f in ("en_c4", "zh_wiki_cmrc2018"):
        if (DEMO / f"{f}.jsonl").exists():
            sets[f"demo/text/{f}.jsonl"] = quality.read_texts(DEMO / f"{f}.jsonl")
    print()
    print(markup_rows(quality.load(), sets))
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
