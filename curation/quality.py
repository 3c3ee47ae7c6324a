"""Document quality score in [0, 1] (higher = better), stored as the `quality_score` column (never a drop).

Public API: `load(path=None).score(texts) -> list[float]`. `load(None)` loads the shipped default model
(`curation/models/quality_default.npz`); `load(path)` a model written by `train_plain(...)` /
`train(...)` and `.save(path)` (the `quality_model` stage writes one per run).

**The shipped model (`PlainModel`, format lmpipe-quality-2)** is deliberately small:

1. sixteen plain text statistics (`curation.quality_features.plain_stats`: length, line structure, stop
   words, digits, case, punctuation, symbols, word length, sentence length, URLs, windowed type-token ratio),
   computed with C-level string operations only;
2. an L2-regularised logistic regression on them and their squares (standardised, clipped to their fitted
   range), fitted on the DCLM human labels, then Platt-rescaled on out-of-fold logits so a score is a
   probability on the labels' scale;
3. a per-language logit shift (`language_shift`): English 0 (the labels' scale); Chinese (wide-character
   share >= 0.3) the difference of the median logits of clean Wikipedia text of the two languages, so that
   one mix threshold means the same in both. Statistics with no meaning in Chinese (word length, letter case)
   are held at their labelled mean for Chinese text.

Measured (bench/quality.py; frozen 70/30 split of the 218 DCLM labels, bench/splits.py): dev 10x5-fold CV
ROC-AUC 0.745, frozen test 0.737 (length alone 0.645 / 0.551), transfer (fitted on dev; WikiText-2 vs C4)
0.882; Chinese vs English clean Wikipedia medians 0.72 vs 0.67 with the shift fitted on other documents;
~1.1x the documents per CPU-second of a DCLM-style fastText classifier's predict. The recipe (all
statistics, squares, L2 1.0) was chosen by CV on the dev part: greedy feature selection raised dev CV to
0.79 but lowered the frozen test to 0.67, so every statistic stays.

**The n-gram model (`QualityModel`, format lmpipe-quality-1)** is what `train` fits (the `quality_model` stage
with reference files): a DCLM-style hashed n-gram classifier (reference text vs raw crawl) whose logit joins
`curation.quality_features.STAT_NAMES` statistics in a combiner fitted on labels, or on reference vs crawl
without labels; Chinese text is scored by the reference combiner. Fitted without labels, it also gets a
per-language logit shift from out-of-fold logits of the reference pieces (`reference_shift`), so the user's
reference text of both languages scores alike. ~7x slower than the plain model.

The old transparent heuristic (`heuristic_score`) stays for comparison in bench/quality.py.

Shipped model (reproducible, ~2 s; data licences in curation/models/README.md):

    python -m curation.quality train-plain --out curation/models/quality_default.npz \\
        --labels ../shared/data/quality/dclm_human_quality/majority_minus_agreement.jsonl \\
        --clean en=../shared/data/text/en/llamafactory_wiki_demo.txt \\
                zh=../shared/data/text/zh/cmrc2018_wikipedia_contexts.jsonl

    python -m curation.quality train --out PATH --positives ... --negatives ... [--labels ...]  # n-gram model
    python -m curation.quality score --model PATH FILE...   # prints one score per document
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curation.filters import cjk_fraction, dup_line_fractions, lines_of
from curation.quality_features import (
    PLAIN_NAMES,
    STAT_NAMES,
    doc_stats,
    ngram_ids,
    ngram_ids_of,
    normalised_cut,
    plain_stats,
    stats_of,
    units_of,
)
from curation.quality_linear import count_matrix, fit_logistic, fit_sparse_logistic, sigmoid, stratified_folds

MODEL_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODEL_DIR / "quality_default.npz"
FORMAT = "lmpipe-quality-1"


# --------------------------------------------------------------------------------- training parameters


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of `train` (chosen by 5-fold CV on the DCLM labels, see docs/LOG.md)."""

    buckets: int = 1 << 18        # hash buckets; 262k keeps collisions rare for a few MB of text
    ngram_l2: float = 1e-3        # reference classifier: thousands of documents, mild penalty
    label_ngram_l2: float = 1e-2  # label classifier: a few hundred documents, stronger penalty
    combiner_l2: float = 0.3      # ~25 standardised inputs on ~200 labels: 0.3 was best of 0.001-1 in CV
    label_ngrams: bool = False    # add a label n-gram classifier: +0.006 CV AUC for 3x the time (LOG.md)
    folds: int = 5
    seed: int = 0
    max_reference_docs: int = 5000  # per class; sampled (seeded) beyond that to keep training in seconds
    chunk_chars: int = 4000       # reference documents are cut into pieces of about this size: a 30 kB
                                  # Wikipedia article counts as several examples, like the web pages it meets
    # statistics the reference combiner (reference vs crawl, no labels) does not use: see _fit_reference_parts
    reference_ignores: tuple[str, ...] = ("log_chars", "log_units", "log_lines")


# ------------------------------------------------------------------------------------------- the model


@dataclass
class NgramLogit:
    """A hashed n-gram logistic regression, stored sparsely (only buckets that were seen)."""

    buckets: int
    idx: np.ndarray  # int64 bucket ids with a non-zero weight
    val: np.ndarray  # float32 weights
    bias: float

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, buckets: int, l2: float) -> NgramLogit:
        return cls.fit_matrix(count_matrix([ngram_ids(t, buckets) for t in texts], buckets), y, buckets, l2)

    @classmethod
    def fit_matrix(cls, m: Any, y: np.ndarray, buckets: int, l2: float) -> NgramLogit:
        """Fit on a `count_matrix` (hashing is the slow part: cross-fitting hashes each document once)."""
        pos = max(1.0, float(y.sum()))
        neg = max(1.0, float(len(y) - y.sum()))
        weight = np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * neg))  # balance the classes
        w, b = fit_sparse_logistic(m, y, l2, weight)
        idx = np.flatnonzero(w)
        return cls(buckets, idx.astype(np.int64), w[idx].astype(np.float32), b)

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.logits_matrix(count_matrix([ngram_ids(t, self.buckets) for t in texts], self.buckets))

    def logits_matrix(self, m: Any) -> np.ndarray:
        dense = np.zeros(self.buckets)
        dense[self.idx] = self.val
        return np.asarray(m @ dense).ravel() + self.bias


@dataclass
class Combiner:
    """Logistic regression on `_terms` of the first `n_inputs` columns of `QualityModel.inputs`.

    `lo`/`hi`: the standardised range of each input in the documents it was fitted on; inputs are clipped to
    it, so the squared terms never extrapolate (see `_terms`). Models saved before these existed load with
    the old fixed ±5 sd clip.
    """

    n_inputs: int
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def logits(self, x: np.ndarray) -> np.ndarray:
        # Row-wise multiply-and-sum, not a BLAS matrix product: a document's score must not depend on which
        # other documents share its batch (BLAS blocking changed the last bit).
        terms = _terms(x[:, : self.n_inputs], self.mean, self.std, self.lo, self.hi)
        return (terms * self.weights).sum(axis=1) + self.bias

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}_mean": self.mean, f"{prefix}_std": self.std, f"{prefix}_weights": self.weights,
               f"{prefix}_head": np.array([self.n_inputs, self.bias])}
        if self.lo is not None and self.hi is not None:
            out.update({f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi})
        return out

    @classmethod
    def from_arrays(cls, z: Any, prefix: str) -> Combiner:
        head = z[f"{prefix}_head"]
        lo, hi = (z[f"{prefix}_lo"], z[f"{prefix}_hi"]) if f"{prefix}_lo" in z else (None, None)
        return cls(int(head[0]), z[f"{prefix}_mean"], z[f"{prefix}_std"], z[f"{prefix}_weights"], float(head[1]),
                   lo, hi)


_CJK_COLUMN = STAT_NAMES.index("cjk")


@dataclass
class QualityModel:
    """Reference n-gram logit (+ label n-gram logit) + document statistics → logistic combiner.

    `main` scores every document, except Chinese ones (CJK share >= 0.3) when `zh` is set: labels that hold
    (almost) no Chinese document cannot fit weights for Chinese statistics, so those documents are scored by
    `zh`, the combiner fitted on reference text vs raw crawl (all languages). `shift[lang]` is then added to
    the logit of a document of that language (`reference_shift`, for a model fitted without labels: the
    user's reference text of both languages scores alike), as in `PlainModel`.
    """

    ref: NgramLogit
    lab: NgramLogit | None
    main: Combiner
    zh: Combiner | None = None
    info: dict[str, Any] = field(default_factory=dict)
    shift: dict[str, float] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [*STAT_NAMES, "ref_ngram", *(["label_ngram"] if self.lab else [])]

    def term_names(self, combiner: Combiner) -> list[str]:
        """A combiner's terms: each standardised input it uses, plus the square of each document statistic."""
        return [*self.input_names[: combiner.n_inputs], *(f"{n}^2" for n in STAT_NAMES)]

    def inputs(self, texts: list[str]) -> np.ndarray:
        """The combiners' raw inputs (one row per text, columns `input_names`)."""
        # Each text is split into units once, for its statistics and for the n-gram ids of both logits
        # (doc_stats + 2x ngram_ids split and lower-cased every text three times).
        logits = [self.ref, *([self.lab] if self.lab else [])]
        stats: list[np.ndarray] = []
        ids: dict[int, list[list[int]]] = {m.buckets: [] for m in logits}
        for t in texts:
            cut, n_chars = normalised_cut(t)  # table markup stripped: same units, layout-free statistics
            units = units_of(cut)
            lowered = list(map(str.lower, units))
            stats.append(stats_of(cut, n_chars, units, lowered))
            for buckets, lists in ids.items():
                lists.append(ngram_ids_of(lowered, buckets))
        matrices = {b: count_matrix(lists, b) for b, lists in ids.items()}
        cols = [np.array(stats).reshape(len(texts), len(STAT_NAMES))]
        cols += [m.logits_matrix(matrices[m.buckets])[:, None] for m in logits]
        return np.hstack(cols)

    def score(self, texts: list[str]) -> list[float]:
        """Quality scores in [0, 1], one per text; any str (empty, huge, binary junk) gets a score."""
        if not texts:
            return []
        texts = [t if isinstance(t, str) else "" for t in texts]
        return [float(s) for s in sigmoid(self.logits(texts))]

    def raw_logits(self, x: np.ndarray) -> np.ndarray:
        """The combiners' logits before the language shift (rows of `inputs`)."""
        z = self.main.logits(x)
        chinese = x[:, _CJK_COLUMN] >= 0.3
        if self.zh is not None and chinese.any():
            z[chinese] = self.zh.logits(x[chinese])
        return z

    def logits(self, texts: list[str]) -> np.ndarray:
        x = self.inputs(texts)
        return self.raw_logits(x) + _offsets(x[:, _CJK_COLUMN] >= 0.3, self.shift)

    def explain(self, combiner: Combiner | None = None) -> list[tuple[str, float]]:
        """(term, weight per standard deviation) of a combiner (default `main`), largest magnitude first."""
        combiner = combiner or self.main
        return sorted(zip(self.term_names(combiner), map(float, combiner.weights)), key=lambda p: -abs(p[1]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"ref_idx": self.ref.idx, "ref_val": self.ref.val, **self.main.arrays("main")}
        if self.lab:
            arrays.update(lab_idx=self.lab.idx, lab_val=self.lab.val)
        if self.zh:
            arrays.update(self.zh.arrays("zh"))
        meta = {"format": FORMAT, "buckets": self.ref.buckets, "ref_bias": self.ref.bias,
                "lab_bias": self.lab.bias if self.lab else None, "inputs": self.input_names, "info": self.info,
                "shift": self.shift}
        with open(path, "wb") as fh:  # a file handle: np.savez would append ".npz" to other names
            np.savez_compressed(fh, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        return path


def _offsets(chinese: np.ndarray, shift: dict[str, float]) -> np.ndarray:
    """The per-language logit shift of each document (`chinese`: CJK share >= 0.3), as both models apply it."""
    return np.where(chinese, shift.get("zh", 0.0), shift.get("en", 0.0))


def _read_model(path: Path) -> QualityModel | PlainModel:
    if not path.is_file():
        raise FileNotFoundError(f"quality model not found: {path} (train one with `python -m curation.quality train`)")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") == PLAIN_FORMAT:
            return _read_plain(path, z, meta)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a quality model of format {PLAIN_FORMAT} or {FORMAT} "
                             f"(found {meta.get('format')!r})")
        ref = NgramLogit(meta["buckets"], z["ref_idx"], z["ref_val"], meta["ref_bias"])
        lab = NgramLogit(meta["buckets"], z["lab_idx"], z["lab_val"], meta["lab_bias"]) if "lab_idx" in z else None
        zh = Combiner.from_arrays(z, "zh") if "zh_head" in z else None
        model = QualityModel(ref, lab, Combiner.from_arrays(z, "main"), zh, meta["info"], meta.get("shift", {}))
    if model.input_names != meta["inputs"]:
        raise ValueError(f"{path}: model inputs {meta['inputs']} do not match this code's {model.input_names}")
    return model


def load(path: str | Path | None = None) -> QualityModel | PlainModel:
    """The quality scorer: the shipped default model for `None`, else the model file at `path`."""
    return _read_model(Path(path) if path is not None else DEFAULT_MODEL)


# ------------------------------------------------------------------------------------------- training


def _chunks(text: str, size: int) -> list[str]:
    """`text` cut into pieces of about `size` characters, at line ends (else at spaces) where possible."""
    pieces = []
    while len(text) > 1.5 * size:
        cut = text.rfind("\n", size // 2, size)
        if cut < 0:
            cut = text.rfind(" ", size // 2, size)
        cut = cut if cut > 0 else size
        pieces.append(text[:cut])
        text = text[cut:].lstrip()
    return pieces + [text] if text.strip() else pieces


def _sample(texts: list[str], cap: int, seed: int) -> list[str]:
    if len(texts) <= cap:
        return list(texts)
    rng = np.random.default_rng(seed)
    return [texts[i] for i in sorted(rng.choice(len(texts), cap, replace=False))]


def sample_negatives(files: Sequence[str | Path], cap: int, seed: int, exclude_sources: Collection[str] = (),
                     chunk_chars: int = TrainParams.chunk_chars, batch_rows: int = 1000) -> list[str]:
    """Up to `cap` raw-crawl pieces for the reference classifier, sampled while streaming document Parquet files.

    Each document's text (rows whose `source` is in `exclude_sources`, or without text, are skipped) is cut
    into the pieces `train` would cut it into (`_chunks`), and a bottom-k reservoir keeps the `cap` pieces with
    the smallest hash(seed, id, piece number): a uniform sample that depends on the documents alone, not on
    the file order or `batch_rows`. Memory holds one batch and `cap` pieces, whatever the corpus size. The
    pieces come back in input order, so a corpus of at most `cap` pieces gives exactly the list that chunking
    every text would (and `train` then fits the same model).
    """
    import xxhash

    from curation.documents import resolve_inputs
    from curation.mix import stream_batches

    kept: list[tuple[int, int, int, str]] = []  # max-heap on the hash: (-hash, row, piece number, piece)
    row = 0
    for path in resolve_inputs(files):
        for batch in stream_batches(path, ("id", "text", "source"), batch_rows):
            k = batch.num_rows
            values = {c: batch.column(c).to_pylist() for c in batch.schema.names}
            ids = values.get("id") or [str(row + i) for i in range(k)]
            for i, (doc, text, source) in enumerate(zip(ids, values.get("text") or [None] * k,
                                                        values.get("source") or [None] * k)):
                if not text or source in exclude_sources:
                    continue
                for n, piece in enumerate(_chunks(text, chunk_chars)):
                    key = xxhash.xxh64_intdigest(f"negative\x1f{seed}\x1f{doc}\x1f{n}")
                    if len(kept) < cap:
                        heapq.heappush(kept, (-key, row + i, n, piece))
                    elif -key > kept[0][0]:  # smaller than the largest hash kept
                        heapq.heapreplace(kept, (-key, row + i, n, piece))
            row += batch.num_rows
    return [piece for _, _, _, piece in sorted(kept, key=lambda k: (k[1], k[2]))]


def _reference_docs(positives: list[str], negatives: list[str], params: TrainParams) -> tuple[list[str], np.ndarray]:
    pos = _sample([c for t in positives for c in _chunks(t, params.chunk_chars)], params.max_reference_docs,
                  params.seed)
    neg = _sample([c for t in negatives for c in _chunks(t, params.chunk_chars)], params.max_reference_docs,
                  params.seed + 1)
    if not pos or not neg:
        raise ValueError(f"the reference classifier needs positives and negatives (got {len(pos)} and {len(neg)})")
    return pos + neg, np.array([1.0] * len(pos) + [0.0] * len(neg))


def fit_reference(positives: list[str], negatives: list[str], params: TrainParams = TrainParams()) -> NgramLogit:
    """The DCLM-style reference classifier (uses no labels)."""
    docs, y = _reference_docs(positives, negatives, params)
    return NgramLogit.fit(docs, y, params.buckets, params.ngram_l2)


def _fit_reference_parts(positives: list[str], negatives: list[str], params: TrainParams,
                         ref: NgramLogit | None) -> tuple[NgramLogit, Combiner, dict[str, float]]:
    """The reference classifier (unless given) and the reference combiner: fitted on reference (1) vs crawl (0)
    documents, with out-of-fold reference logits (3 folds); every document is hashed once. Also the language
    shift of the reference pieces (`reference_shift`)."""
    docs, y = _reference_docs(positives, negatives, params)
    m = count_matrix([ngram_ids(t, params.buckets) for t in docs], params.buckets)
    ref = ref or NgramLogit.fit_matrix(m, y, params.buckets, params.ngram_l2)
    oof = np.zeros(len(y))
    for fold in stratified_folds(y, 3, params.seed):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        oof[fold] = NgramLogit.fit_matrix(m[rest], y[rest], params.buckets, params.ngram_l2).logits_matrix(m[fold])
    x = np.hstack([np.array([doc_stats(t) for t in docs]), oof[:, None]])
    # Length in reference-vs-crawl data says how each source was cut (Chinese Wikipedia paragraphs of ~500
    # characters, articles in 4000-character pieces, whole web pages), not how good a document is: fitted,
    # it gave long documents negative weight (the shipped model ranked the happy-llm textbook chapters below
    # ChineseWebText's dirty sample, AUC 0.11; now 0.41, and the model without labels went from 0.32 to 0.73
    # on WikiText-2 vs held-out C4). Those columns are held at 0 here, so their weights are exactly 0.
    for name in params.reference_ignores:
        x[:, STAT_NAMES.index(name)] = 0.0
    combiner = _fit_combiner(x, y, params.combiner_l2)
    return ref, combiner, reference_shift(combiner.logits(x[y == 1]), x[y == 1, _CJK_COLUMN] >= 0.3)


def _terms(x: np.ndarray, mean: np.ndarray, std: np.ndarray, lo: np.ndarray | None = None,
           hi: np.ndarray | None = None) -> np.ndarray:
    """Standardised inputs and the squares of the statistics: quality is not monotonic in every statistic
    (very short and very long lines are both bad); the squares gave +0.015 CV AUC on the DCLM labels at every
    penalty tried (docs/LOG.md).

    Each standardised input is clipped to [lo, hi], its range in the fitting documents (else ±5 sd, the old
    rule): a square fitted on 218 web pages of 0.5-5 kB must not extrapolate to a 60 kB Wikipedia article.
    Measured (bench/quality.py "transfer" rows, reference articles vs crawl sources left out of training, main
    combiner): C4 0.831 → 0.883, Dolma 0.790 → 0.833, WARC pages 0.924 → 0.896, CV AUC on the labels
    unchanged (0.747 → 0.745, within the 0.011 sd over fold seeds).
    """
    z = (x - mean) / std
    z = np.clip(z, -5.0, 5.0) if lo is None or hi is None else np.clip(z, lo, hi)
    return np.hstack([z, z[:, : len(STAT_NAMES)] ** 2])


def _fit_combiner(x: np.ndarray, y: np.ndarray, l2: float) -> Combiner:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0  # a constant input (e.g. `cjk` on English-only labels) gets weight 0, not NaN
    lo, hi = (x.min(axis=0) - mean) / std, (x.max(axis=0) - mean) / std
    pos = max(1.0, float(y.sum()))
    weight = np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * max(1.0, len(y) - pos)))
    w, b = fit_logistic(_terms(x, mean, std, lo, hi), y, l2, weight)
    return Combiner(x.shape[1], mean, std, w, b, lo, hi)


# Labels with fewer Chinese documents than this leave Chinese to the reference combiner.
MIN_CHINESE_LABELS = 30
# Reference pieces a language needs before `reference_shift` moves its scores (a median of fewer is noise).
MIN_SHIFT_DOCS = 20


def reference_shift(z: np.ndarray, chinese: np.ndarray) -> dict[str, float]:
    """Per-language logit shifts that give the median reference piece of each language the logit of the
    median English one ({"en": 0, "zh": ...}, from logits `z` of the reference pieces, their n-gram part
    out of fold); {} when either language has fewer than MIN_SHIFT_DOCS pieces.

    Without it, a model trained on the user's reference text scores by language as much as by quality:
    trained on Wikipedia of both languages vs a mostly English crawl, held-out Wikipedia pieces scored 0.63
    (en) and 0.91 (zh), so one mix threshold could not serve both; with the shift, 0.63 and 0.65
    (tests/test_quality.py). The shipped plain model is aligned the same way, on clean Wikipedia
    (`language_shift`)."""
    if chinese.sum() < MIN_SHIFT_DOCS or (~chinese).sum() < MIN_SHIFT_DOCS:
        return {}
    return {"en": 0.0, "zh": round(float(np.median(z[~chinese]) - np.median(z[chinese])), 4)}


def train(positives: list[str], negatives: list[str], labelled: list[str] | None = None,
          labels: list[int] | None = None, params: TrainParams = TrainParams(),
          ref: NgramLogit | None = None, zh: Combiner | None = None) -> QualityModel:
    """Fit a `QualityModel` (see the module docstring). `ref` and `zh` reuse an already fitted reference
    classifier and reference combiner (they depend on no labels, so cross-validation fits them once)."""
    info: dict[str, Any] = {"params": params.__dict__, "positives": len(positives), "negatives": len(negatives)}
    if not labelled:
        ref, combiner, shift = _fit_reference_parts(positives, negatives, params, ref)
        info.update(fitted_on="reference", shift=shift or "none (fewer than MIN_SHIFT_DOCS reference pieces "
                    "in en or zh)")
        return QualityModel(ref, None, combiner, None, info, shift)
    y = _label_array(labelled, labels)
    stats = np.array([doc_stats(t) for t in labelled])
    chinese_labels = int((stats[:, _CJK_COLUMN] >= 0.3).sum())
    if chinese_labels < MIN_CHINESE_LABELS and zh is None and positives and negatives:
        ref, zh, _shift = _fit_reference_parts(positives, negatives, params, ref)
    ref = ref or fit_reference(positives, negatives, params)
    cols = [stats, ref.logits(labelled)[:, None]]
    lab = None
    if params.label_ngrams:
        oof = np.zeros(len(y))
        for fold in stratified_folds(y, min(params.folds, int(min(y.sum(), len(y) - y.sum()))), params.seed):
            rest = np.setdiff1d(np.arange(len(y)), fold)
            part = NgramLogit.fit([labelled[i] for i in rest], y[rest], params.buckets, params.label_ngram_l2)
            oof[fold] = part.logits([labelled[i] for i in fold])
        cols.append(oof[:, None])
        lab = NgramLogit.fit(labelled, y, params.buckets, params.label_ngram_l2)
    info.update(fitted_on="labels", labelled=len(labelled), positive_labels=int(y.sum()),
                chinese_labels=chinese_labels, chinese_by="reference combiner" if zh else "label combiner")
    main = _fit_combiner(np.hstack(cols), y, params.combiner_l2)
    # (no language shift: the labels set the scale, and English and Chinese are scored by different combiners)
    return QualityModel(ref, lab, main, zh if chinese_labels < MIN_CHINESE_LABELS else None, info)


def cross_validated_scores(labelled: list[str], labels: list[int], positives: list[str], negatives: list[str],
                           params: TrainParams = TrainParams(), folds: int = 5, seed: int = 0,
                           ref: NgramLogit | None = None) -> np.ndarray:
    """Out-of-fold scores: each fold is scored by a model trained (combiner, label n-grams, standardisation)
    on the other folds only. The reference classifier sees no labels, so it is fitted once."""
    y = np.asarray(labels, dtype=float)
    ref = ref or fit_reference(positives, negatives, params)
    out = np.zeros(len(y))
    for fold in stratified_folds(y, folds, seed):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        # No reference combiner (zh) here: English-only labels are scored by the label combiner anyway.
        model = train([], [], [labelled[i] for i in rest], [int(y[i]) for i in rest], params, ref)
        out[fold] = model.score([labelled[i] for i in fold])
    return out


# ------------------------------------------------------------------------ the plain model (shipped default)

PLAIN_FORMAT = "lmpipe-quality-2"
# The combiner's inputs: every plain statistic but `cjk` (the language is handled by the calibration).
PLAIN_INPUTS: tuple[str, ...] = tuple(n for n in PLAIN_NAMES if n != "cjk")
_PLAIN_CJK = PLAIN_NAMES.index("cjk")
# Statistics with no meaning for Chinese text (no spaces between words, no letter case): held at their mean
# in the labelled documents (standardised 0), so they neither help nor hurt a Chinese document.
_NOT_FOR_ZH = tuple(PLAIN_INPUTS.index(n) for n in ("mean_word_len", "upper"))
PLAIN_L2 = 1.0  # best of 0.1-10 in 10x repeated 5-fold CV on the dev part of the DCLM labels (docs/LOG.md)


def language_of(cjk_share: float) -> str:
    """The score's language group: 'zh' for text whose wide-character share is >= 0.3, else 'en'."""
    return "zh" if cjk_share >= 0.3 else "en"


@dataclass
class PlainModel:
    """Logistic regression on a dozen plain text statistics (+ their squares), then a per-language shift of the
    logit so that a score means the same in English and Chinese.

    `combiner` is fitted on human labels (English web pages). `shift[lang]` is added to the logit of a document
    of that language: 0 for English (the labels' own scale), and for Chinese the difference between the median
    logits of clean reference text of the two languages (Wikipedia in both), so that a clean Chinese article
    and a clean English one get the same score, and one threshold keeps the same share of each
    (bench/quality.py, "cross-language" table).
    """

    combiner: Combiner
    shift: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return list(PLAIN_INPUTS)

    def inputs(self, texts: list[str]) -> np.ndarray:
        """The statistics of each text (columns `PLAIN_NAMES`)."""
        return np.array([plain_stats(t) for t in texts]).reshape(len(texts), len(PLAIN_NAMES))

    def raw_logits(self, stats: np.ndarray) -> np.ndarray:
        """The combiner's logits before the language shift (rows of `inputs`)."""
        x = np.delete(stats, _PLAIN_CJK, axis=1)
        zh = stats[:, _PLAIN_CJK] >= 0.3
        for j in _NOT_FOR_ZH:
            x[zh, j] = self.combiner.mean[j]
        return self.combiner.logits(x)

    def logits(self, texts: list[str]) -> np.ndarray:
        stats = self.inputs(texts)
        return self.raw_logits(stats) + _offsets(stats[:, _PLAIN_CJK] >= 0.3, self.shift)

    def score(self, texts: list[str]) -> list[float]:
        """Quality scores in [0, 1], one per text; any str (empty, huge, binary junk) gets a score."""
        if not texts:
            return []
        texts = [t if isinstance(t, str) else "" for t in texts]
        return [float(s) for s in sigmoid(self.logits(texts))]

    def explain(self) -> list[tuple[str, float]]:
        """(term, weight per standard deviation), largest magnitude first."""
        terms = [*PLAIN_INPUTS, *(f"{n}^2" for n in PLAIN_INPUTS)]
        return sorted(zip(terms, map(float, self.combiner.weights)), key=lambda p: -abs(p[1]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": PLAIN_FORMAT, "inputs": self.input_names, "shift": self.shift, "info": self.info}
        with open(path, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta, sort_keys=True)), **self.combiner.arrays("main"))
        return path


def _plain_terms_combiner(x: np.ndarray, y: np.ndarray, l2: float) -> Combiner:
    """`_fit_combiner` for the plain inputs: standardised inputs and the square of every one of them."""
    comb = _fit_combiner(x, y, l2)
    if comb.weights.shape[0] != 2 * x.shape[1]:
        raise AssertionError("plain combiner: expected a square term for every input")
    return comb


def language_shift(model: PlainModel, clean: dict[str, list[str]]) -> dict[str, float]:
    """Per-language logit shifts that give clean reference text of every language the median raw logit of the
    English one (`clean["en"]`): quantile matching at the median, on the logit scale."""
    medians = {lang: float(np.median(model.raw_logits(model.inputs(ts)))) for lang, ts in clean.items() if ts}
    if "en" not in medians:
        raise ValueError("language_shift needs English clean reference text (the labels' scale)")
    return {lang: round(medians["en"] - m, 6) for lang, m in medians.items()}


def _label_array(labelled: list[str], labels: list[int] | list[float]) -> np.ndarray:
    """The labels as floats, checked: one 0/1 value per labelled document, both values present."""
    y = np.asarray(labels, dtype=float)
    if len(y) != len(labelled) or not set(np.unique(y)) <= {0.0, 1.0}:
        raise ValueError("labels must be one 0/1 value per labelled document")
    if y.min() == y.max():
        raise ValueError("labelled documents need both labels (0 = low, 1 = high quality)")
    return y


def train_plain(labelled: list[str], labels: list[int], clean: dict[str, list[str]] | None = None,
                l2: float = PLAIN_L2) -> PlainModel:
    """Fit the plain model on `{text, label}` documents; `clean` (language -> clean reference texts, e.g.
    Wikipedia in each language) sets the per-language shifts (none: no shift)."""
    y = _label_array(labelled, labels)
    stats = np.array([plain_stats(t) for t in labelled])
    x = np.delete(stats, _PLAIN_CJK, axis=1)
    comb = _plain_terms_combiner(x, y, l2)
    # Strong L2 shrinks the logits towards 0 (scores of 0.4-0.6 for nearly everything): rescale them by a
    # 1-d logistic fit of the labels on out-of-fold logits (Platt scaling), so that a score is a probability
    # of "high quality" on the labels' scale and thresholds spread over [0, 1]. Ranking is unchanged.
    oof = np.zeros(len(y))
    for fold in stratified_folds(y, 5, 0):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        oof[fold] = _plain_terms_combiner(x[rest], y[rest], l2).logits(x[fold])
    (a,), b = fit_logistic(oof[:, None], y, 1e-6)
    a = max(a, 1e-3)  # never flip the ranking (a <= 0 only if the out-of-fold logits rank backwards)
    comb = Combiner(comb.n_inputs, comb.mean, comb.std, comb.weights * a, comb.bias * a + b, comb.lo, comb.hi)
    model = PlainModel(comb, {"en": 0.0}, {"fitted_on": "labels", "labelled": len(y), "positive_labels": int(y.sum()),
                                           "l2": l2, "platt": [round(float(a), 4), round(float(b), 4)]})
    if clean:
        model.shift = language_shift(model, clean)
        model.info["calibration_docs"] = {lang: len(ts) for lang, ts in clean.items()}
    return model


# Clean reference text is compared in pieces of about this size (Chinese Wikipedia paragraphs are ~500
# characters, English Wikipedia articles ~35,000): the length statistic must not make the languages differ.
CLEAN_PIECE_CHARS = 2000


def clean_pieces(specs: Sequence[str]) -> dict[str, list[str]]:
    """`LANG=FILE` arguments -> language -> the files' texts cut into ~CLEAN_PIECE_CHARS-character pieces."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        lang, sep, name = spec.partition("=")
        if not sep or lang not in ("en", "zh"):
            raise ValueError(f"--clean {spec!r}: expected en=FILE or zh=FILE")
        out.setdefault(lang, []).extend(c for t in read_texts(name) for c in _chunks(t, CLEAN_PIECE_CHARS))
    return out


def _read_plain(path: Path, z: Any, meta: dict[str, Any]) -> PlainModel:
    if meta.get("inputs") != list(PLAIN_INPUTS):
        raise ValueError(f"{path}: model inputs {meta.get('inputs')} do not match this code's {list(PLAIN_INPUTS)}")
    return PlainModel(Combiner.from_arrays(z, "main"), {k: float(v) for k, v in meta["shift"].items()}, meta["info"])


# ------------------------------------------------------------------------------------ reading texts


def _record_text(obj: Any) -> str | None:
    """The text of one JSON record: `text`, Alpaca (instruction/input/output), ShareGPT or messages."""
    if not isinstance(obj, dict):
        return obj if isinstance(obj, str) else None
    if isinstance(obj.get("text"), str):
        return obj["text"]
    if "instruction" in obj:
        parts = [obj.get(k) for k in ("instruction", "input", "context", "output", "response")]
        return "\n".join(p for p in parts if isinstance(p, str) and p.strip()) or None
    turns = obj.get("conversations") or obj.get("messages")
    if isinstance(turns, list):
        parts = [t.get("value") or t.get("content") for t in turns if isinstance(t, dict)]
        return "\n".join(p for p in parts if isinstance(p, str) and p.strip()) or None
    return None


def _read_utf8(path: Path, what: str) -> str:
    """The file's text; a file that is not UTF-8 is a ValueError naming it and the first bad byte (it used to be
    a bare UnicodeDecodeError for labels, and silently replaced characters for reference text)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path} is not UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); convert it, "
                         "e.g. iconv -f GBK -t UTF-8") from None


def read_texts(path: str | Path) -> list[str]:
    """Documents of a reference file: JSONL/JSON (text, Alpaca, ShareGPT), Parquet (`text`), .txt (one per
    line), WARC/WET (main text extracted as in ingest). Records without text are skipped and not returned."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"quality reference file not found: {path}")
    name = path.name.lower()
    if name.endswith((".warc", ".warc.gz", ".wet", ".wet.gz", ".warc.txt", ".parquet")):
        from curation.extract import extract
        from curation.readers import read_records

        out = []
        for rec in read_records(path):
            text = extract(rec["content"], rec["url"], rec["charset"])[0] if rec["kind"] == "html" else rec["content"]
            if text and text.strip():
                out.append(text)
        return out
    if name.endswith(".txt"):
        lines = _read_utf8(path, "quality reference file").splitlines()
        return [line.strip() for line in lines if line.strip()]
    raw = _read_utf8(path, "quality reference file")
    try:
        if name.endswith(".json") and raw.lstrip().startswith("["):
            records = json.loads(raw)
        else:
            records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON / JSON Lines ({exc.msg} at line {exc.lineno}); reference files are "
                         "JSONL, JSON, Parquet, WARC or .txt (one document per line)") from None
    return [t for t in map(_record_text, records) if t and t.strip()]


def read_labels(path: str | Path) -> tuple[list[str], list[int]]:
    """A JSONL file of `{"text": str, "label": 0 or 1}` (1 = high quality), as DCLM's human annotations."""
    texts, labels = [], []
    for line_no, line in enumerate(_read_utf8(Path(path), "quality_model.labels").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or obj.get("label") not in (0, 1):
            raise ValueError(f"{path}:{line_no}: need {{\"text\": str, \"label\": 0 or 1}}")
        texts.append(obj["text"])
        labels.append(int(obj["label"]))
    return texts, labels


# ---------------------------------------------------------------------------- the old heuristic score

_END_PUNCT = tuple(".!?\"'”’。！？：…」』）)")
_HEURISTIC_STOP = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we "
    "say her she or an will my one all would there their is are was were".split()
)
_HEURISTIC_WEIGHTS = {"length": 0.25, "punctuation": 0.25, "symbols": 0.15, "stop_words": 0.15, "repetition": 0.20}


def heuristic_score(text: str) -> float:
    """The pre-learned transparent score (kept as a baseline): weighted mean of sub-scores in [0, 1] for
    length (log, 1.0 at 400 words / 800 CJK chars), line-final punctuation (1.0 at 60 % of lines), symbol
    share (1.0 at <= 2 %), English stop words (1.0 at 30 %) and repetition (1 - duplicated-line chars)."""
    lines = lines_of(text)
    if not lines:
        return 0.0
    cjk = cjk_fraction(text) >= 0.3
    words = text.split()
    units = len("".join(words)) / 2 if cjk else len(words)
    chars = [ch for ch in text if not ch.isspace()]
    symbols = sum(1 for ch in chars if unicodedata.category(ch)[0] in "SC")
    parts = {
        "length": min(1.0, math.log1p(units) / math.log1p(400)),
        "punctuation": min(1.0, sum(line.endswith(_END_PUNCT) for line in lines) / len(lines) / 0.6),
        "symbols": max(0.0, min(1.0, 1.0 - (symbols / max(1, len(chars)) - 0.02) / 0.18)),
        "repetition": 1.0 - dup_line_fractions(lines)[1],
    }
    if not cjk:
        stop = sum(1 for w in words if w.lower().strip(".,;:!?\"'()") in _HEURISTIC_STOP)
        parts["stop_words"] = min(1.0, stop / len(words) / 0.3)
    total = sum(_HEURISTIC_WEIGHTS[k] for k in parts)
    return sum(_HEURISTIC_WEIGHTS[k] * v for k, v in parts.items()) / total


# ------------------------------------------------------------------------------------------------ CLI


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m curation.quality", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="fit a quality model and save it")
    tr.add_argument("--out", required=True, help="model file to write (.npz)")
    tr.add_argument("--positives", nargs="+", required=True, help="curated reference files (high quality)")
    tr.add_argument("--negatives", nargs="+", required=True, help="raw crawl files (WARC, JSONL, Parquet, …)")
    tr.add_argument("--labels", help="JSONL of {text, label} to fit the combiner on (else: reference data)")
    tp = sub.add_parser("train-plain", help="fit the plain model (the shipped default) and save it")
    tp.add_argument("--out", required=True, help="model file to write (.npz)")
    tp.add_argument("--labels", required=True, help="JSONL of {text, label} (e.g. DCLM human labels)")
    tp.add_argument("--clean", nargs="+", default=[], metavar="LANG=FILE",
                    help="clean reference text per language for the score's language shift, e.g. en=wiki.txt "
                         f"zh=wiki.jsonl (cut into ~{CLEAN_PIECE_CHARS}-character pieces)")
    sc = sub.add_parser("score", help="print one score per document of the given files")
    sc.add_argument("--model", help="model file (default: the shipped model)")
    sc.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        pos = [t for p in args.positives for t in read_texts(p)]
        neg = [t for p in args.negatives for t in read_texts(p)]
        labelled, labels = read_labels(args.labels) if args.labels else (None, None)
        model = train(pos, neg, labelled, labels)
        model.info["sources"] = {"positives": [Path(p).name for p in args.positives],
                                 "negatives": [Path(p).name for p in args.negatives],
                                 "labels": Path(args.labels).name if args.labels else None}
        path = model.save(args.out)
        print(json.dumps({"out": str(path), "bytes": path.stat().st_size, **model.info,
                          "weights": dict(model.explain())}, indent=1))
    elif args.cmd == "train-plain":
        labelled, labels = read_labels(args.labels)
        clean = clean_pieces(args.clean)
        plain = train_plain(labelled, labels, clean)
        plain.info["sources"] = {"labels": Path(args.labels).name, "clean": [Path(c).name for c in args.clean]}
        path = plain.save(args.out)
        print(json.dumps({"out": str(path), "bytes": path.stat().st_size, "shift": plain.shift, **plain.info,
                          "weights": dict(plain.explain())}, indent=1))
    else:
        model = load(args.model)
        for f in args.files:
            texts = read_texts(f)
            for s in model.score(texts):
                print(f"{s:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
