"""The multiple-choice eval sets: the shipped registry and the loader of task files (shipped or the user's).

Every task is one JSONL file, one item a line, in cloze form:

    {"id": "42", "context": "Question: …\\nAnswer:", "choices": [" first", " second"], "label": 1}

The model scores ``context + choices[i]`` and picks the most likely choice. ``context`` may also be a list with
one context per choice (WinoGrande: the options differ before the blank, the scored rest is shared). Choices
carry their own leading space where the language needs one (English), none in Chinese.

A malformed line (not JSON, a missing field, fewer than two choices, a label out of range, contexts that do not
match the choices) is skipped, counted and named in ``Task.malformed`` as ``file:line: reason``; it never stops
the suite. ``eval.extra_tasks`` adds the user's own files in this schema, or sets under licences we may not
ship (C-Eval, CMMLU) in their CSV form: columns question/Question, A, B, C, D, answer/Answer; a directory of
CSV files (one per subject) is one task.

Shipped data and its licences: evals/SOURCES.md; how the sample was drawn: evals/build_data.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
REFERENCE_DIR = DATA_DIR / "reference"

# name -> language. Files are DATA_DIR / f"{name}.jsonl".
SHIPPED: dict[str, str] = {
    "arc_easy": "en", "arc_challenge": "en", "openbookqa": "en", "commonsenseqa": "en", "hellaswag": "en",
    "piqa": "en", "copa": "en", "winogrande": "en",
    "xcopa_zh": "zh", "gaokao_history": "zh", "gaokao_geography": "zh", "gaokao_biology": "zh",
}
MAX_REASONS = 20  # malformed items named in the output per task; the count is always complete


@dataclass(frozen=True)
class Item:
    id: str
    contexts: list[str]  # one per choice (the same string repeated for plain cloze items)
    choices: list[str]
    label: int


@dataclass
class Task:
    name: str
    lang: str
    items: list[Item]
    malformed: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def chance(self) -> float:
        """Expected accuracy of a uniform guess (items may have different numbers of choices)."""
        return sum(1 / len(i.choices) for i in self.items) / max(1, len(self.items))

    def texts(self) -> list[str]:
        """Each item's text as a reader would see it (the context with its correct choice): what
        decontamination looks for in a corpus."""
        out = []
        for it in self.items:
            out.append(it.contexts[it.label] + it.choices[it.label])
        return out


def parse_item(row: Any, n: int) -> Item:
    """One item from a decoded JSON row; ValueError says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    choices, label, context = row.get("choices"), row.get("label"), row.get("context")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ValueError("'choices' must be a list of at least two non-empty strings")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
        raise ValueError(f"'label' must be an integer in 0..{len(choices) - 1}")
    if isinstance(context, str):
        contexts = [context] * len(choices)
    elif isinstance(context, list) and len(context) == len(choices) and all(isinstance(c, str) for c in context):
        contexts = context
    else:
        raise ValueError("'context' must be a string or one string per choice")
    return Item(str(row.get("id", n)), contexts, choices, label)


def _lang_of(items: list[Item]) -> str:
    """'zh' when most characters of the contexts are CJK ideographs, else 'en'."""
    text = "".join(i.contexts[0] for i in items[:50])
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and cjk / letters > 0.5 else "en"


def load_jsonl_task(path: Path, name: str, lang: str | None = None) -> Task:
    items, reasons, bad = [], [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(parse_item(json.loads(line), n))
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                bad += 1
                if len(reasons) < MAX_REASONS:
                    reasons.append(f"{path.name}:{n}: {str(e).splitlines()[0][:120]}")
    return Task(name, lang or _lang_of(items), items, bad, reasons)


def _csv_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    rows = []
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    for f in files:
        with open(f, encoding="utf-8-sig", newline="") as fh:
            rows += [(f"{f.name}:{n}", r) for n, r in enumerate(csv.DictReader(fh), 2)]
    return rows


def load_csv_task(path: Path, name: str) -> Task:
    """C-Eval / CMMLU style: question, A..D, answer (a letter) -> '问题：…\\n答案：' + option text."""
    items, reasons, bad = [], [], 0
    for where, r in _csv_rows(path):
        r = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        opts = [r.get(c, "") for c in "abcd"]
        answer = r.get("answer", "").upper()
        if not r.get("question") or not all(opts) or answer not in ("A", "B", "C", "D"):
            bad += 1
            if len(reasons) < MAX_REASONS:
                reasons.append(f"{where}: needs question, A-D and an answer letter")
            continue
        ctx = f"问题：{r['question']}\n答案："
        items.append(Item(r.get("id") or where, [ctx] * 4, opts, "ABCD".index(answer)))
    return Task(name, _lang_of(items), items, bad, reasons)


def load_extra(path: str) -> Task:
    """A user's task: ``[NAME=]PATH`` to a JSONL file in our schema, a CSV file or a directory of CSV files."""
    name, _, given = path.rpartition("=") if "=" in path else ("", "", path)
    p = Path(given).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"eval.extra_tasks: {p} does not exist")
    name = name or p.stem
    if p.is_dir() or p.suffix == ".csv":
        return load_csv_task(p, name)
    return load_jsonl_task(p, name)


def data_digest() -> str:
    """sha256 (16 hex) over every shipped eval file: goes into the ids of artifacts that depend on them."""
    h = hashlib.sha256()
    for path in sorted(DATA_DIR.rglob("*.jsonl")):
        h.update(path.relative_to(DATA_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def extra_files(extra: list[str]) -> list[str]:
    """The files behind ``eval.extra_tasks`` entries (a directory: its CSV files), for artifact ids."""
    out = []
    for entry in extra:
        p = Path(entry.rpartition("=")[2] if "=" in entry else entry).expanduser()
        out += [str(f) for f in sorted(p.glob("*.csv"))] if p.is_dir() else [str(p)]
    return out


def load_suite(names: list[str], extra: list[str] | None = None, max_items: int | None = None) -> list[Task]:
    """The shipped tasks named (in order), then the extra ones; each cut to its first `max_items` items."""
    unknown = [n for n in names if n not in SHIPPED]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; shipped tasks are: {', '.join(SHIPPED)}")
    tasks = [load_jsonl_task(DATA_DIR / f"{n}.jsonl", n, SHIPPED[n]) for n in names]
    tasks += [load_extra(p) for p in extra or []]
    if max_items:
        for t in tasks:
            t.items = t.items[:max_items]
    return tasks


def reference_texts() -> dict[str, list[str]]:
    """Held-out prose per language for bits per byte (never part of any corpus; decontamination indexes it)."""
    out = {}
    for path in sorted(REFERENCE_DIR.glob("*.jsonl")):
        out[path.stem] = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    return out
