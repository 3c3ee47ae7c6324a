"""curation.report: the corpus report's files, sections, plots and the Prefect (inlined) form, on real demo
documents passed through the real langid and filter stages. ~5 s."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from curation.config import FilterConfig, LangIdConfig, MixConfig
from curation.documents import doc_id, read_documents, write_documents
from curation.mix import mix
from curation.report import PLOTS, embedded, write_report
from curation.stages import run_filter, run_langid

DEMO_TEXT = Path(__file__).resolve().parents[1] / "demo" / "text"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict, list]:
    root = tmp_path_factory.mktemp("report")
    rows = []
    for name in ("en_c4.jsonl", "zh_wiki_cmrc2018.jsonl"):
        with open(DEMO_TEXT / name, encoding="utf-8") as f:
            for i, line in zip(range(40), f):
                text = json.loads(line)["text"]
                rows.append({"id": doc_id(f"{name}/{i}", text), "text": text, "url": None, "title": "",
                             "source": name})
    write_documents(rows, root / "ingest.parquet")
    lang_stats = run_langid([root / "ingest.parquet"], root / "langid", LangIdConfig())
    filter_stats = run_filter([root / "langid"], root / "filter", FilterConfig())
    # quality_score and dedup columns as the later stages add them (scores spread so every decile is filled)
    scored = [{**r, "quality_score": (i % 37) / 37, "dup_cluster": r["id"], "dup_cluster_size": 1 + (i % 9 == 0)}
              for i, r in enumerate(read_documents([root / "filter"]))]
    write_documents(scored, root / "quality.parquet", ["quality_score", "dup_cluster", "dup_cluster_size"])
    mix_dir = root / "mix"
    stats = mix([root / "quality.parquet"], mix_dir, MixConfig(min_quality=0.1, val_fraction=0.1))
    upstream = [("langid", "langid-000000000001", lang_stats), ("filter", "filter-000000000002", filter_stats)]
    result = write_report(mix_dir, [root / "quality.parquet"], stats, upstream, {"en": 0.1, "zh": 0.1})
    return mix_dir, stats, [result, filter_stats]


def test_report_files_and_sections(mixed) -> None:
    mix_dir, stats, (result, filter_stats) = mixed
    md = (mix_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert result["report"] == "report/report.md"
    for section in ("Stages", "Mix by language", "Mix by source", "Document lengths", "Quality scores",
                    "Dedup cluster sizes", "Samples per quality decile"):
        assert f"## {section}" in md and section in result["sections"]
    # every filter drop reason is in the stages table, with its count
    assert filter_stats["dropped"], "the real filter stage should drop some C4 pages"
    for reason, count in filter_stats["dropped"].items():
        assert f"{reason} {count}" in md
    assert f"low_quality {stats['dropped']['low_quality']}" in md  # the mix's own drops
    assert f"**{stats['train']['rows']} train rows**" in md
    # samples: 10 deciles per language, each text truncated
    sample_rows = [ln for ln in md.splitlines() if re.match(r"\| \d+ \| \d\.\d{3} \| (en|zh) \|", ln)]
    for lang in ("en", "zh"):
        assert {int(ln.split("|")[1]) for ln in sample_rows if f"| {lang} |" in ln} == set(range(1, 11))
    assert all(len(ln.split("|")[4]) <= 300 + 3 for ln in sample_rows)


def test_plots_are_valid_pngs(mixed) -> None:
    mix_dir, _, _ = mixed
    for name in PLOTS:
        path = mix_dir / "report" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = mpimg.imread(path)
        assert image.shape[0] >= 200 and image.shape[1] >= 300  # decodable, with a real size
        assert image.std() > 0.01  # not a blank canvas
        assert f"]({name})" in (mix_dir / "report" / "report.md").read_text(encoding="utf-8")


def test_embedded_report_inlines_every_plot(mixed) -> None:
    mix_dir, _, _ = mixed
    md = embedded(mix_dir / "report")
    uris = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert len(uris) == len(PLOTS)
    assert all(base64.b64decode(u)[:4] == b"\x89PNG" for u in uris)
    assert not any(f"]({name})" in md for name in PLOTS)
