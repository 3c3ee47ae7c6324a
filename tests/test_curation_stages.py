"""curation.stages: each stage's files and stats, and the chain ingest -> ... -> mix on real WARCs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.config import DedupConfig, FilterConfig, IngestConfig, LangIdConfig, MixConfig, QualityConfig
from curation.documents import doc_id, read_documents, write_documents
from curation.stages import run_dedup, run_filter, run_ingest, run_langid, run_mix, run_quality
from shared_data import needs

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
WARCS = [DATA / "warc" / "cc-main-2020-34-sample.warc.gz", DATA / "warc" / "dolma-sample-0000.warc.gz"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Run every stage once on the two demo WARCs (about 6 s, mostly trafilatura)."""
    if not all(p.exists() for p in WARCS):
        pytest.skip("shared/data/warc is absent (shared test data)")
    root = tmp_path_factory.mktemp("chain")
    stages = [
        ("ingest", run_ingest, IngestConfig(), [str(p) for p in WARCS]),
        ("langid", run_langid, LangIdConfig(), None),
        # the Common Crawl sample's Chinese pages are all web spam: spam off, so that zh reaches the mix
        ("filter", run_filter, FilterConfig(spam=False), None),
        ("dedup", run_dedup, DedupConfig(), None),
        ("quality", run_quality, QualityConfig(), None),
        ("mix", run_mix, MixConfig(val_fraction=0.1), None),
    ]
    results: dict[str, tuple[Path, dict]] = {}
    parent: Path | None = None
    for name, fn, cfg, inputs in stages:
        out = root / name
        # A parent's removed/ directory may be passed: it is ignored.
        stats = fn(inputs or [str(parent), str(parent / "removed")], out, cfg)
        json.dumps(stats)  # JSON-serialisable
        assert stats["seconds"] >= 0
        results[name] = (out, stats)
        parent = out
    return results


def test_ingest_extracts_every_html_page(chain: dict) -> None:
    out, stats = chain["ingest"]
    assert stats["docs_in"] == 16 + 22  # SOURCES.md: 16 CC pages + 22 wget pages
    assert stats["docs_out"] + sum(stats["dropped"].values()) == stats["docs_in"]
    assert stats["read"]["skipped"]["request"] == 17 + 22
    rows = list(read_documents([out / "docs-00000.parquet"]))
    assert {r["source"] for r in rows} == {p.name for p in WARCS}
    assert all(r["id"] == doc_id(r["url"], r["text"]) for r in rows)


# Since the fallback pre-check (curation.extract.FALLBACK_MIN_PAGE_TEXT) the two WARCs of `chain` send no page to
# trafilatura (their unsure pages hold < 2500 characters of text); these two still do: creativecommons.org's
# home (3.8k characters: trafilatura 659 vs our 161) and archive.org's sign-up page in the Heritrix crawl (its
# terms of use sit in a <textarea>).
def test_ingest_fallback_setting_reaches_the_extractor(tmp_path: Path) -> None:
    """ingest.fallback='none': pages our scorer finds too little main text on are not sent to trafilatura, so
    fewer pages come out and the rest keep our scorer's text."""
    warcs = [str(needs(DATA / "warc" / name))
             for name in ("dolma-sample-0001.warc.gz", "aut-archiveit-227-example.warc.gz")]
    stats = run_ingest(warcs, tmp_path / "full", IngestConfig())
    none_stats = run_ingest(warcs, tmp_path / "none", IngestConfig(fallback="none"))
    assert none_stats["docs_in"] == stats["docs_in"]
    assert none_stats["docs_out"] < stats["docs_out"]  # trafilatura rescues the sign-up page's terms of use
    full = {r["url"]: r["text"] for r in read_documents([tmp_path / "full" / "docs-00000.parquet"])}
    plain = {r["url"]: r["text"] for r in read_documents([tmp_path / "none" / "docs-00000.parquet"])}
    assert plain.keys() < full.keys()
    assert full["https://creativecommons.org/"] != plain["https://creativecommons.org/"]
    # Pages our scorer handles alone are extracted identically; the few that differ went to trafilatura.
    assert sum(full[u] == t for u, t in plain.items()) > 0.8 * len(plain)


def test_fallback_min_page_chars_zero_restores_the_fallback_on_short_pages(chain: dict, tmp_path: Path) -> None:
    """ingest.fallback_min_page_chars=0: the unsure pages of `chain`'s WARCs (listings, notices: < 2500
    characters of page text) go to trafilatura again, which returns their menus; the other pages are equal."""
    out, stats = chain["ingest"]
    all_stats = run_ingest([str(p) for p in WARCS], tmp_path / "all", IngestConfig(fallback_min_page_chars=0))
    assert all_stats["docs_in"] == stats["docs_in"]
    default = {r["url"]: r["text"] for r in read_documents([out / "docs-00000.parquet"])}
    every = {r["url"]: r["text"] for r in read_documents([tmp_path / "all" / "docs-00000.parquet"])}
    assert default.keys() <= every.keys()
    changed = [u for u in every if default.get(u) != every[u]]
    assert changed and len(changed) < 0.3 * len(every)
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        IngestConfig(fallback_min_page_chars=-1)


def test_langid_keeps_zh_and_en_and_records_other_languages(chain: dict) -> None:
    out, stats = chain["langid"]
    assert {r["lang"] for r in read_documents([out])} == {"zh", "en"}
    removed = pq.read_table(out / "removed" / "removed-00000.parquet").to_pylist()
    assert {r["drop_reason"] for r in removed} >= {"lang:ru", "lang:de", "lang:nl"}
    assert all(r["lang_score"] > 0 for r in removed)
    assert stats["dropped"] == {k: v for k, v in stats["dropped"].items()
                                if k.startswith("lang:") or k == "low_lang_score"}


def test_filter_drops_with_reasons(chain: dict) -> None:
    out, stats = chain["filter"]
    removed = pq.read_table(out / "removed" / "removed-00000.parquet").to_pylist()
    assert len(removed) == sum(stats["dropped"].values()) > 0
    assert all(r["drop_reason"] for r in removed)


def test_chain_yields_zh_and_en_in_train(chain: dict) -> None:
    out, stats = chain["mix"]
    train = pq.read_table(out / "train-00000.parquet")
    assert {"zh", "en"} <= set(train.column("lang").to_pylist())
    assert {"quality_score", "dup_cluster", "dup_cluster_size"} <= set(train.column_names)
    assert stats["val"]["rows"] >= 1 and (out / "val-00000.parquet").exists()
    quality_out, _ = chain["quality"]
    assert all(0.0 <= r["quality_score"] <= 1.0 for r in read_documents([quality_out]))


def test_dedup_stage_exact_and_near_duplicates(tmp_path: Path) -> None:
    path = DATA / "text" / "en" / "dolma_cc_en_head-0091.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test data)")
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()[:6]]
    base = max(texts, key=len)
    words = base.split()
    near = " ".join(words[:-3] + ["completely", "different", "ending"])  # a few words changed at the end
    assert "," in base
    exact = base.replace(",", "")  # the same text after normalisation (punctuation removed), but shorter
    docs = [*texts, near, exact]
    rows = [{"id": doc_id(f"http://d/{i}", t), "text": t, "url": f"http://d/{i}", "source": "t", "lang": "en"}
            for i, t in enumerate(docs)]
    other = next(i for i, t in enumerate(texts) if t != base)
    rows.append(dict(rows[other]))  # the same document twice (same id)
    write_documents(rows, tmp_path / "in.parquet")
    stats = run_dedup([tmp_path / "in.parquet"], tmp_path / "out", DedupConfig())
    kept = {r["id"]: r for r in read_documents([tmp_path / "out"])}
    removed = {r["url"]: r for r in pq.read_table(tmp_path / "out" / "removed" / "removed-00000.parquet").to_pylist()}
    base_id = rows[texts.index(base)]["id"]
    assert len(kept) == len(set(texts)) and kept[base_id]["dup_cluster_size"] == 3
    assert kept[base_id]["dup_cluster"] == base_id
    assert removed["http://d/6"]["drop_reason"] == "near_duplicate" and removed["http://d/6"]["duplicate_of"] == base_id
    assert removed["http://d/7"]["drop_reason"] == "exact_duplicate"
    assert stats["dropped"]["exact_duplicate"] == 2 and stats["dropped"]["near_duplicate"] == 1


def test_missing_input_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input not found"):
        run_ingest([str(tmp_path / "missing.warc.gz")], tmp_path / "out", IngestConfig())
    with pytest.raises(FileNotFoundError, match="input not found"):
        run_filter([str(tmp_path / "missing.parquet")], tmp_path / "out", FilterConfig())


def test_configs_are_frozen_and_strict() -> None:
    with pytest.raises(ValueError):
        DedupConfig(treshold=0.7)  # typo: extra keys are forbidden
    cfg = MixConfig()
    with pytest.raises(ValueError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        DedupConfig(bands=4)
