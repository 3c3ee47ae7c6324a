"""curation.mix on real demo documents (weights, thresholds, top-k, rehydration, token budget, shuffle, split)
and the DAG behaviour that matters to users: a changed mix setting re-runs mix alone, and bad mix settings
fail before any work. Runs in ~10 s (the DAG test builds the corpus half of a two-file tiny preset once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.config import MixConfig
from curation.documents import doc_id, write_documents
from curation.mix import mix

REPO = Path(__file__).resolve().parents[1]
DEMO_TEXT = REPO / "demo" / "text"


def real_docs(n_per_lang: int = 60) -> list[dict]:
    """Real C4 (en) and Wikipedia (zh) paragraphs; two sources per language; scores spread over [0, 1)."""
    rows = []
    for lang, name in (("en", "en_c4.jsonl"), ("zh", "zh_wiki_cmrc2018.jsonl")):
        with open(DEMO_TEXT / name, encoding="utf-8") as f:
            for i, line in zip(range(n_per_lang), f):
                text = json.loads(line)["text"]
                rows.append({
                    "id": doc_id(f"{name}/{i}", text), "text": text, "url": f"http://{lang}/{i}", "title": "",
                    "source": f"{lang}-{'a' if i % 2 else 'b'}.warc.gz", "lang": lang, "lang_score": 0.99,
                    "quality_score": (i % 20) / 20, "dup_cluster": None, "dup_cluster_size": 1 + (i % 3 == 0) * 4,
                })
    return rows


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mix") / "docs.parquet"
    write_documents(real_docs(), path, schema_extra=["quality_score", "dup_cluster", "dup_cluster_size"])
    return path


def rows_of(out: Path) -> tuple[list[dict], list[dict]]:
    def read(split: str) -> list[dict]:
        return [r for p in sorted(out.glob(f"{split}-*.parquet")) for r in pq.read_table(p).to_pylist()]
    return read("train"), read("val")


def test_thresholds_top_fraction_and_source_weights(docs: Path, tmp_path: Path) -> None:
    cfg = MixConfig(min_quality=0.25, min_quality_lang={"zh": 0.5}, source_weights={"en-a.warc.gz": 0},
                    val_fraction=0.1)
    stats = mix([docs], tmp_path / "a", cfg)
    train, val = rows_of(tmp_path / "a")
    out = train + val
    assert all(r["quality_score"] >= 0.25 for r in out if r["lang"] == "en")
    assert all(r["quality_score"] >= 0.5 for r in out if r["lang"] == "zh")
    assert not any(r["source"] == "en-a.warc.gz" for r in out)  # weight 0
    # en: 60 docs, scores i%20/20 < 0.25 for 5 of 20 -> 15 dropped; zh: 10 of 20 -> 30 dropped
    assert stats["dropped"]["low_quality"] == 15 + 30
    assert stats["dropped"]["weight_zero"] == 24  # en-a = odd i; i % 20 >= 5 keeps 8 of its 10 per 20
    assert stats["by_source"]["en-a.warc.gz"]["docs_after"] == 0
    assert stats["by_lang"]["zh"]["docs_before"] == 60 and stats["by_lang"]["zh"]["docs_after"] == 30

    top = mix([docs], tmp_path / "b", MixConfig(top_fraction=0.25, val_fraction=0.1))
    train, val = rows_of(tmp_path / "b")
    for lang in ("en", "zh"):
        kept = [r["quality_score"] for r in train + val if r["lang"] == lang]
        assert len(kept) == 15  # ceil(60 * 0.25) per language
        assert min(kept) >= 0.75  # the best quarter: scores 0.75 .. 0.95
    assert top["dropped"]["below_top_fraction"] == 90


def test_rehydration_repeats_by_cluster_size_in_train_only(docs: Path, tmp_path: Path) -> None:
    stats = mix([docs], tmp_path / "r", MixConfig(rehydrate={1: 1.0, 5: 3.0}, val_fraction=0.1))
    train, val = rows_of(tmp_path / "r")
    counts: dict[str, int] = {}
    for r in train:
        counts[r["id"]] = counts.get(r["id"], 0) + 1
    big = {r["id"] for r in train if r["dup_cluster_size"] == 5}
    small = {r["id"] for r in train if r["dup_cluster_size"] == 1}
    assert big and small
    assert all(counts[i] == 3 for i in big) and all(counts[i] == 1 for i in small)
    assert len({r["id"] for r in val}) == len(val)  # val never repeats a document
    assert stats["repeats"] == 2 * len(big) and stats["rows_out"] == len(train) + len(val)


def test_token_budget_up_and_down_samples(docs: Path, tmp_path: Path) -> None:
    base = mix([docs], tmp_path / "base", MixConfig(val_fraction=0.1))
    full = base["train"]["tokens_est"]
    assert full > 0
    up = mix([docs], tmp_path / "up", MixConfig(val_fraction=0.1, token_budget=3 * full))
    down = mix([docs], tmp_path / "down", MixConfig(val_fraction=0.1, token_budget=full // 3))
    assert up["budget"]["factor"] == pytest.approx(3.0, rel=1e-4)  # full is rounded
    assert up["train"]["tokens_est"] == pytest.approx(3 * full, rel=0.02)  # integer copies: exact here
    assert down["budget"]["factor"] == pytest.approx(1 / 3, rel=1e-3)
    assert down["train"]["tokens_est"] == pytest.approx(full / 3, rel=0.35)  # Bernoulli sampling of 108 docs
    assert up["repeats"] > 0 and down["dropped"]["sampled_out"] > 0
    # the estimate is characters / chars_per_token: zh at 1.4 chars per token, en at 4
    by_lang = base["by_lang"]
    zh_chars = sum(len(r["text"]) for r in real_docs() if r["lang"] == "zh")
    assert by_lang["zh"]["tokens_after_est"] == pytest.approx(zh_chars / 1.4, rel=0.15)


def test_shuffle_is_deterministic_and_split_is_seed_independent(docs: Path, tmp_path: Path) -> None:
    cfg = MixConfig(val_fraction=0.1, seed=3, shard_rows=40)
    a = mix([docs], tmp_path / "a", cfg)
    b = mix([docs], tmp_path / "b", cfg)
    assert a == b
    for name in a["train"]["files"] + a["val"]["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    meta = pq.ParquetFile(tmp_path / "a" / "train-00000.parquet").metadata
    assert meta.num_rows == 40 and meta.row_group(0).column(0).compression == "ZSTD"
    train, val = rows_of(tmp_path / "a")
    order = [r["id"] for r in train]
    assert order != sorted(order) and not ({r["id"] for r in val} & set(order))
    mix([docs], tmp_path / "c", cfg.model_copy(update={"seed": 4}))
    train_c, val_c = rows_of(tmp_path / "c")
    assert [r["id"] for r in train_c] != order  # another shuffle
    assert {r["id"] for r in val_c} == {r["id"] for r in val}  # same split


@pytest.mark.parametrize("cfg, needle", [
    (MixConfig(source_weights={"nope.warc.gz": 2.0}), "names source 'nope.warc.gz'"),
    (MixConfig(weights={"fr": 1.0}), "weights sum to zero"),
    (MixConfig(source_weights={"*.warc.gz": 0.0}), "weights sum to zero"),
    (MixConfig(min_quality_lang={"en": 0.99}), "mix.min_quality_lang.en=0.99 keeps no 'en' document"),
    (MixConfig(min_quality=0.99), "mix.min_quality=0.99 keeps no"),
    (MixConfig(min_quality_lang={"de": 0.5}), "names language 'de'"),
])
def test_bad_config_fails_before_any_output(docs: Path, tmp_path: Path, cfg: MixConfig, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("*", r"\*")):
        mix([docs], tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()  # nothing written


def test_config_level_errors() -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        MixConfig(weights={"en": 0, "zh": 0})
    with pytest.raises(ValueError, match="rehydrate keys"):
        MixConfig(rehydrate={0: 2.0})


# ------------------------------------------------------------------------------------------- DAG level


def test_changed_mix_setting_rebuilds_mix_alone(tmp_path: Path) -> None:
    from flows import dag
    from flows.config import UserError, resolve_config
    from storage.store import ArtifactStore

    inputs = [str(REPO / "demo" / "warc" / "cc-main-2020-34-sample.warc.gz"), str(DEMO_TEXT / "en_c4.jsonl")]
    store = ArtifactStore(tmp_path / "store")

    def config(**mix: str):
        # no positives: the quality_model artifact is the shipped model (training one takes ~30 s here)
        overrides = {"quality_model.positives": "[]", **{f"mix.{k}": v for k, v in mix.items()}}
        return resolve_config("tiny", overrides, inputs)

    # bad source weight: refused before the first stage runs (nothing in the store)
    with pytest.raises(UserError, match="missing.warc.gz"):
        dag.run_flow_plain("corpus", config(source_weights='{"missing.warc.gz": 2}'), store, None, None)
    assert store.list() == []

    first = dag.run_flow_plain("corpus", config(), store, None, None)
    assert all(r["built"] for r in first.values())
    changed = config(top_fraction="0.5", source_weights='{"*.jsonl": 2}')
    second = dag.run_flow_plain("corpus", changed, store, None, None)
    assert [s for s, r in second.items() if r["built"]] == ["mix"]
    assert all(second[s]["id"] == first[s]["id"] for s in dag.FLOWS["corpus"][:-1])
    mix_dir = store.local_dir(second["mix"]["id"])
    stats = store.get(second["mix"]["id"]).stats
    assert stats["dropped"]["below_top_fraction"] > 0
    assert stats["by_source"]["en_c4.jsonl"]["repeats"] > 0
    assert (mix_dir / "report" / "report.md").exists()
    assert "report/report.md" in {f["path"] for f in store.get(second["mix"]["id"]).files}

    # a language weight that matches no document: refused against the cached quality artifact, nothing built
    before = {m.id for m in store.list()}
    with pytest.raises(UserError, match="weights sum to zero"):
        dag.run_flow_plain("corpus", config(weights='{"fr": 1}'), store, None, None)
    assert {m.id for m in store.list()} == before


def test_cli_bad_mix_setting_is_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "LMPIPE_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "corpus", "--preset", "tiny", "--no-prefect",
         "--set", 'mix.source_weights={"nope.jsonl": 1}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmpipe: error: mix.source_weights names source 'nope.jsonl'")
    assert not list((tmp_path / "home").glob("ingest/ingest-*"))  # no stage ran
