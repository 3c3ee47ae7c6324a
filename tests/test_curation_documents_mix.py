"""curation.documents (schema, ids, streaming I/O) and curation.mix (weights, split, determinism)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.config import MixConfig
from curation.documents import doc_id, read_documents, resolve_inputs, write_documents
from curation.mix import mix


def make_docs(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        lang = "zh" if i % 2 else "en"
        text = f"document {i} " * 5
        rows.append({"id": doc_id(f"http://x/{i}", text), "text": text, "url": f"http://x/{i}", "title": "",
                     "source": "test", "lang": lang, "lang_score": 0.9, "quality_score": (i % 10) / 10})
    return rows


def test_doc_id_is_stable_and_content_sensitive() -> None:
    assert doc_id("http://a", "text") == doc_id("http://a", "text")
    assert len({doc_id("http://a", "text"), doc_id("http://b", "text"), doc_id("http://a", "text!")}) == 3


def test_write_and_read_documents_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    assert write_documents(make_docs(12_001), path, schema_extra=["quality_score"]) == 12_001
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3 and max(meta.row_group(i).num_rows for i in range(3)) == 5000
    assert meta.row_group(0).column(0).compression == "ZSTD"
    rows = list(read_documents([path]))
    assert len(rows) == 12_001
    assert set(rows[0]) == {"id", "text", "url", "title", "source", "lang", "lang_score", "quality_score"}


def test_resolve_inputs_skips_removed_and_rejects_missing(tmp_path: Path) -> None:
    write_documents(make_docs(2), tmp_path / "docs-00000.parquet")
    write_documents(make_docs(2), tmp_path / "removed" / "removed-00000.parquet")
    assert (resolve_inputs([tmp_path, tmp_path / "removed" / "removed-00000.parquet"])
            == [tmp_path / "docs-00000.parquet"])
    with pytest.raises(FileNotFoundError):
        resolve_inputs([tmp_path / "nope.parquet"])


def read_split(out: Path, split: str) -> list[tuple[str, str]]:
    return [(r["id"], r["lang"]) for r in read_documents(sorted(out.glob(f"{split}-*.parquet")))]


def test_mix_is_deterministic_weighted_and_has_val(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    write_documents(make_docs(400), src, schema_extra=["quality_score"])
    cfg = MixConfig(weights={"en": 2.0, "zh": 0.5}, min_quality=0.2, val_fraction=0.05, seed=7, shard_rows=150)
    stats_a = mix([src], tmp_path / "a", cfg)
    stats_b = mix([src], tmp_path / "b", cfg)
    assert stats_a == stats_b
    train, val = read_split(tmp_path / "a", "train"), read_split(tmp_path / "a", "val")
    assert train == read_split(tmp_path / "b", "train") and val == read_split(tmp_path / "b", "val")
    assert val and not ({i for i, _ in train} & {i for i, _ in val})  # no document in both splits
    assert stats_a["dropped"]["low_quality"] == 80  # scores 0.0 and 0.1: 2 in 10
    en = sum(lang == "en" for _, lang in train)
    zh = sum(lang == "zh" for _, lang in train + val)
    val_en = sum(lang == "en" for _, lang in val)
    assert en == 2 * (160 - val_en)  # every kept en train doc twice; val documents appear once
    assert len({i for i, _ in val}) == len(val)
    assert 50 < zh < 110  # about half of the 160 kept zh docs
    assert stats_a["train"]["files"][:2] == ["train-00000.parquet", "train-00001.parquet"]
    shuffled = [i for i, _ in train]
    assert shuffled != sorted(shuffled)
    other_seed = mix([src], tmp_path / "c", cfg.model_copy(update={"seed": 8}))
    assert read_split(tmp_path / "c", "train") != train and other_seed["val"]["rows"] > 0


def test_mix_tiny_corpus_still_gets_one_val_doc(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    write_documents(make_docs(3), src, schema_extra=["quality_score"])
    stats = mix([src], tmp_path / "out", MixConfig(val_fraction=0.0001))
    assert stats["val"]["rows"] == 1 and stats["train"]["rows"] == 2
