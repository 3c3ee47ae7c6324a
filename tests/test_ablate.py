"""`lmpipe ablate`: variant parsing and bad input (one-line errors before any work), the comparison maths on real
numbers, and one end-to-end run on the tiny preset (--no-prefect) that checks sharing and caching (marker `e2e`,
run by .ci/run)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.ablate import (DEFAULT_VARIANTS, eval_metrics, make_spec, mean_std, parse_variant, planned_ids,
                          spread_verdict)
from flows.config import UserError

REPO = Path(__file__).resolve().parents[1]


# ---- parsing and bad input --------------------------------------------------------------------------------


def test_variant_keys_split_on_commas_but_not_inside_json_values() -> None:
    v = parse_variant("strict=mix.top_fraction=0.5,mix.min_quality=0.2")
    assert (v.name, v.overrides) == ("strict", {"mix.top_fraction": "0.5", "mix.min_quality": "0.2"})
    w = parse_variant('zh_heavy=mix.weights={"zh": 2, "en": 0.5},mix.seed=3')
    assert w.overrides == {"mix.weights": '{"zh": 2, "en": 0.5}', "mix.seed": "3"}


def test_spec_gives_seeds_from_the_base_seed_and_defaults_to_two_variants() -> None:
    spec = make_spec("tiny", [], 3, {"pretrain.seed": "7"}, None)
    assert [v.name for v in spec.variants] == [v.split("=")[0] for v in DEFAULT_VARIANTS]
    assert spec.seeds == [7, 8, 9]
    cfg = spec.config(spec.variants[1], 8)
    assert (cfg.mix.top_fraction, cfg.pretrain.seed) == (0.5, 8)


@pytest.mark.parametrize("args, message", [
    (["--variant", "a="], "variant 'a' sets no config key"),
    (["--variant", "a=mix.nope=1"], "variant 'a': unknown config key 'mix.nope'"),
    (["--variant", "a=mix.seed=1", "--variant", "a=mix.seed=2"], "variant name 'a' is given twice"),
    (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--variant", "a=pretrain.steps=5"], "variant 'a' sets 'pretrain.steps', which every variant must share"),
    (["--variant", "a=tokenizer.vocab_size=512"], "which every variant must share (tokenizer"),
    (["--variant", "a=mix.top_fraction=lots"], "variant 'a': invalid config value for 'mix.top_fraction'"),
    (["--variant", "a=mix.seed=1", "--variant", "b=mix.seed=1"], "variants 'a' and 'b' have the same config"),
    (["--variant", "=mix.seed=1"], "--variant expects NAME=KEY=VALUE"),
    (["--variant", "a b=mix.seed=1"], "variant name 'a b' may hold only"),
])
def test_bad_input_is_one_line_before_any_work(args: list[str], message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("LMPIPE_HOME", str(home))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    assert main(["--home", str(home), "ablate", "--preset", "tiny", "--no-prefect", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmpipe: error: ") and "\n" not in err
    assert message in err
    assert not home.exists() or not any(home.iterdir())  # nothing was built


def test_make_spec_raises_user_errors_not_tracebacks() -> None:
    with pytest.raises(UserError, match="sets no config key"):
        make_spec("tiny", ["b=  "], 1, {}, None)


# ---- the comparison maths ---------------------------------------------------------------------------------


def test_mean_and_sample_std() -> None:
    mean, std = mean_std([4.0, 4.1, 4.3])
    assert mean == pytest.approx(4.1333333)
    assert std == pytest.approx(math.sqrt(((4.0 - mean) ** 2 + (4.1 - mean) ** 2 + (4.3 - mean) ** 2) / 2))
    assert mean_std([3.9]) == (3.9, None)


def test_spread_rule_on_bits_per_byte() -> None:
    base, better = [4.10, 4.12], [4.00, 4.01]  # s = 0.01414 and 0.00707: pooled sqrt((2e-4 + 5e-5) / 2) = 0.01118
    v = spread_verdict(base, better)
    assert v["diff"] == pytest.approx(-0.105)
    assert v["pooled_std"] == pytest.approx(math.sqrt(0.000125))
    assert v["exceeds"] is True  # 0.105 > 2 x 0.0112
    close = spread_verdict(base, [4.095, 4.13])  # diff +0.0025, pooled 0.0203
    assert close["exceeds"] is False
    assert spread_verdict([4.1], [4.0]) == {"diff": pytest.approx(-0.1), "pooled_std": None, "exceeds": None}


def test_eval_metrics_flattens_bpb_aggregates_and_task_accuracy() -> None:
    result = {"bpb": {"zh": 4.2, "en": 4.0}, "aggregate": {"centred": 0.1, "centred_en": 0.2},
              "tasks": {"copa": {"acc": 0.6, "lang": "en"}, "xcopa_zh": {"acc": 0.5, "lang": "zh"}}}
    assert eval_metrics(result) == {"bpb_en": 4.0, "bpb_zh": 4.2, "centred": 0.1, "centred_en": 0.2,
                                    "copa.acc": 0.6, "xcopa_zh.acc": 0.5}


# ---- end to end -------------------------------------------------------------------------------------------

# A tiny proxy: 3 steps, 2 tasks of 2 items; reference bits per byte on the full shipped texts.
SMALL = ["--preset", "tiny", "--seeds", "1", "--set", "pretrain.steps=3", "--set", "eval.max_items=2", "--set",
         'eval.tasks=["copa", "xcopa_zh"]']
ROW = re.compile(r"^(\S+)\s+(\d*)\s+(\w+)\s+(built|skipped)\s+(\S+)$")


def _ablate(home: Path, variants: list[str], *flags: str) -> tuple[list[tuple[str, str, str]], dict, str]:
    """Run the CLI; returns ([(variant, stage, status)], the ablation record it printed the id of, stdout)."""
    cmd = [sys.executable, "-m", "flows.cli", "--home", str(home), "ablate", *SMALL, *flags]
    for v in variants:
        cmd += ["--variant", v]
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect")}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [(m[1], m[3], m[4]) for m in map(ROW.match, proc.stdout.splitlines()) if m]
    aid = re.search(r"Comparison: (ablation-[0-9a-f]{12})", proc.stdout)[1]
    record = json.loads((home / "ablation" / aid / "ablation.json").read_text(encoding="utf-8"))
    assert "within the seed spread" not in proc.stdout and "one seed: no spread" in proc.stdout
    return rows, record, proc.stdout


@pytest.mark.e2e  # ~35 s on 2 CPU cores: run by .ci/run, not the default set
def test_variants_share_upstream_and_a_new_variant_trains_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rows, record, _ = _ablate(home, ["all=mix.top_fraction=1", "top50=mix.top_fraction=0.5"], "--no-prefect")
    a, b = (record["variants"][n]["artifacts"] for n in ("all", "top50"))
    for stage in ("ingest", "langid", "filter", "dedup", "quality_model", "quality", "tokenizer"):
        assert a[stage] == b[stage], stage  # one artifact for both variants
    assert a["mix"] != b["mix"] and a["tokens"] != b["tokens"] and a["pretrain@0"] != b["pretrain@0"]
    tokens_b = json.loads((home / "tokens" / b["tokens"] / "manifest.json").read_text())
    assert tokens_b["parents"] == [b["mix"], a["tokenizer"]]  # the baseline's tokenizer, pinned
    assert [r[1] for r in rows if r[2] == "built"].count("pretrain") == 2

    eval_json = json.loads((home / "eval" / record["variants"]["top50"]["evals"][0] / "eval.json").read_text())
    expected = set(eval_metrics(eval_json))
    assert {"bpb_en", "bpb_zh", "centred", "copa.acc", "xcopa_zh.acc"} <= expected
    assert set(record["metrics"]) == expected
    for name in ("all", "top50"):
        assert set(record["table"][name]) == expected
    corpus = {n: record["variants"][n]["corpus"] for n in ("all", "top50")}
    assert corpus["top50"]["mix.docs_out"] < corpus["all"]["mix.docs_out"]
    assert corpus["top50"]["epochs"] > corpus["all"]["epochs"]  # same token budget, smaller corpus
    assert record["budget"]["tokens"] == 3 * 4 * 64  # tiny: batch 4 x seq 64
    assert list((home / "ablation").glob("*/ablation.png"))

    three = ["all=mix.top_fraction=1", "top50=mix.top_fraction=0.5", "q03=mix.min_quality=0.3"]
    rows2, record2, _ = _ablate(home, three, "--no-prefect")
    built = {(v, s) for v, s, status in rows2 if status == "built"}
    assert {s for v, s in built} <= {"mix", "tokens", "pretrain", "eval"}  # tokenizer and corpus from the cache
    assert {v for v, s in built} == {"q03"}  # only the new variant trains
    assert record2["variants"]["all"]["evals"] == record["variants"]["all"]["evals"]
    assert record2["variants"]["q03"]["artifacts"]["tokenizer"] == a["tokenizer"]

    # Everything planned is in the store: the ids planned up front are the ones built, and the default (Prefect)
    # mode answers from the store without starting a Prefect server.
    spec = make_spec("tiny", three, 1, {"pretrain.steps": "3", "eval.max_items": "2",
                                         "eval.tasks": '["copa", "xcopa_zh"]'}, None)
    planned = planned_ids(spec)
    assert all((home / aid.rsplit("-", 1)[0] / aid / "manifest.json").exists() for aid in planned)
    rows3, record3, out3 = _ablate(home, three)
    assert "no Prefect run created" in out3 and not [r for r in rows3 if r[2] == "built"]
    assert planned[-1] == re.search(r"Comparison: (ablation-[0-9a-f]{12})", out3)[1]


@pytest.mark.slow
def test_prefect_flow_publishes_the_comparison_and_matches_the_plain_path(prefect_harness, tmp_path: Path) -> None:
    import anyio
    from prefect.client.orchestration import get_client

    from flows.ablate import PlainStages, run_ablation
    from flows.prefect_flows import ablate_flow
    from storage.store import ArtifactStore

    home = str(tmp_path / "home")
    overrides = {"pretrain.steps": "3", "eval.max_items": "2", "eval.tasks": '["copa", "xcopa_zh"]'}
    variants = ["all=mix.top_fraction=1", "top50=mix.top_fraction=0.5"]
    out = ablate_flow(preset="tiny", variants=variants, seeds=2, overrides=overrides, home=home)
    assert out["built"] and sum(r["stage"] == "pretrain" and r["built"] for r in out["runs"]) == 4

    async def ablation_artifact() -> str:
        async with get_client() as client:  # the REST call: see tests/test_flows.py for why
            resp = await client._client.post("/artifacts/filter", json={"limit": 200, "sort": "CREATED_DESC"})
            resp.raise_for_status()
            return next(a["data"] for a in resp.json() if a.get("key") == "ablation")

    md = anyio.run(ablation_artifact)
    assert "Mean ± sample std" in md and "data:image/png;base64," in md and "pooled std" in md

    spec = make_spec("tiny", variants, 2, overrides, None)  # --no-prefect: the very same artifacts, none built
    store = ArtifactStore(home)
    plain = run_ablation(spec, PlainStages(spec, store), store)
    assert plain["ablation"] == out["ablation"] and not any(r["built"] for r in plain["runs"])

