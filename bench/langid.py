"""Language ID: `curation.langid.identify` (script rules + lid.176 + English second opinion) against plain
fastText lid.176, on the lingua test sentences (75 languages, the file name is the gold label).

Both are scored at the configured thresholds (`LangIdConfig.min_score`): a document counts as predicted
`zh`/`en` only when its score reaches that language's minimum, as in the `langid` stage. The peer gets the
same thresholds (its score is the bare fastText probability). Rows:

* single sentences: zh and en precision/recall over all 75 languages, overall exact-label accuracy;
* paragraphs: 5 consecutive sentences of the same file joined (recall target >= 0.99);
* Traditional-script Classical Chinese lines (論語, 孟子, 唐詩三百首, … from ../shared/data/text/zh/chinese-poetry),
  which the policy keeps as zh; Japanese sentences predicted zh (must be 0);
* speed: documents per second on one core over all sentences, ours / peer.

    .venv/bin/python bench/langid.py     # ~10 s
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.config import LangIdConfig  # noqa: E402
from curation.langid import ZH_VARIANTS, fasttext_top, identify  # noqa: E402

DATA = REPO.parent / "shared" / "data"
LID = DATA / "lid" / "lingua_testdata" / "sentences"
POETRY = DATA / "text" / "zh" / "chinese-poetry"
CODE_MAP = {"nb": "no"}  # lid.176 says `no` where lingua says `nb`


def peer(text: str) -> tuple[str, float]:
    """Plain lid.176; its Chinese labels (yue, wuu, …) count as zh, like ours."""
    label, prob = fasttext_top(text)
    return ("zh" if label in ZH_VARIANTS else label), prob


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key in ("paragraphs", "content", "para"):
            if key in node:
                yield from _strings(node[key])


def classical_lines() -> list[str]:
    lines = []
    for path in sorted(POETRY.rglob("*.json")):
        lines += [s.strip() for s in _strings(json.loads(path.read_text(encoding="utf-8"))) if len(s.strip()) >= 4]
    return lines


def scores(data: list[tuple[str, str]], fn: Callable[[str], tuple[str, float]], cfg: LangIdConfig) -> dict[str, float]:
    preds = []
    for _, text in data:
        lang, score = fn(text)
        ok = score >= cfg.min_score.get(lang, cfg.default_min_score)
        preds.append((lang, ok))
    out: dict[str, float] = {"acc": sum(lang == CODE_MAP.get(g, g) for (g, _), (lang, _) in zip(data, preds)) / len(data)}
    for code in ("zh", "en"):
        tp = sum(g == code and lang == code and ok for (g, _), (lang, ok) in zip(data, preds))
        fp = sum(g != code and lang == code and ok for (g, _), (lang, ok) in zip(data, preds))
        n = sum(g == code for g, _ in data)
        out[f"{code}_recall"] = tp / n if n else float("nan")
        out[f"{code}_precision"] = tp / (tp + fp) if tp + fp else float("nan")
    return out


def main() -> None:
    if not LID.exists():
        sys.exit(f"{LID} is absent: this bench needs the shared data")
    cfg = LangIdConfig()
    sentences = [(f.stem, line) for f in sorted(LID.glob("*.txt"))
                 for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    paragraphs = []
    for f in sorted(LID.glob("*.txt")):
        lines = [line for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        paragraphs += [(f.stem, " ".join(lines[i : i + 5])) for i in range(0, len(lines) - 4, 5)]
    classical = classical_lines()
    japanese = [text for g, text in sentences if g == "ja"]

    print(f"# bench/langid.py  {time.strftime('%Y-%m-%d')}  {platform.machine()} {os.cpu_count()} cores  "
          f"python {platform.python_version()}  thresholds {cfg.min_score}\n")
    print("| set | metric | target | lmpipe identify | peer: plain lid.176 | ratio |")
    print("|---|---|---|---:|---:|---:|")
    targets = {"zh_recall": ">= 0.99", "en_recall": ">= 0.93", "en_precision": ">= 0.99", "zh_precision": "", "acc": ""}
    for name, data, keys in [("lingua sentences (37k, 75 langs)", sentences, list(targets)),
                             ("lingua paragraphs (5 sentences)", paragraphs, ["zh_recall", "en_recall", "zh_precision", "en_precision"])]:
        ours, theirs = scores(data, identify, cfg), scores(data, peer, cfg)
        for key in keys:
            target = ">= 0.99" if name.startswith("lingua para") and key.endswith("recall") else targets[key]
            ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
            print(f"| {name} | {key} | {target} | {ours[key]:.4f} | {theirs[key]:.4f} | {ratio:.2f}x |")

    def zh_share(fn: Callable[[str], tuple[str, float]], texts: list[str]) -> float:
        return sum(fn(t)[0] == "zh" and fn(t)[1] >= cfg.min_score["zh"] for t in texts) / len(texts)

    ours_c, peer_c = zh_share(identify, classical), zh_share(peer, classical)
    print(f"| Classical Chinese, mostly Traditional ({len(classical)} lines) | zh recall | >= 0.98 | {ours_c:.4f} | "
          f"{peer_c:.4f} | {ours_c / peer_c:.2f}x |")
    ours_j, peer_j = zh_share(identify, japanese), zh_share(peer, japanese)
    print(f"| Japanese sentences ({len(japanese)}) | share taken as zh | 0 | {ours_j:.4f} | {peer_j:.4f} | - |")

    timings = {}
    for label, fn in [("ours", identify), ("peer", peer)]:
        best = float("inf")
        for _ in range(3):  # best of 3: the machine is shared
            start = time.perf_counter()
            for _, text in sentences:
                fn(text)
            best = min(best, time.perf_counter() - start)
        timings[label] = len(sentences) / best
    print(f"| lingua sentences | docs/s, one core (best of 3) | >= 1,500 and >= peer | {timings['ours']:,.0f} | "
          f"{timings['peer']:,.0f} | {timings['ours'] / timings['peer']:.2f}x |")
    para_t = {}
    for label, fn in [("ours", identify), ("peer", peer)]:
        start = time.perf_counter()
        for _, text in paragraphs:
            fn(text)
        para_t[label] = len(paragraphs) / (time.perf_counter() - start)
    print(f"| lingua paragraphs | docs/s, one core | >= peer | {para_t['ours']:,.0f} | {para_t['peer']:,.0f} | "
          f"{para_t['ours'] / para_t['peer']:.2f}x |")


if __name__ == "__main__":
    main()
