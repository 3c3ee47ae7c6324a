"""The eval stage (evals.harness) and the shipped eval sets (evals.tasks): real tokenizers trained on demo text,
real models (random and briefly trained), real shipped task files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evals.config import EvalConfig
from evals.harness import Scorer, aggregate, centred, eval_markdown, run_eval, score_task
from evals.tasks import (DATA_DIR, SHIPPED, Item, Task, extra_files, load_extra, load_jsonl_task, load_suite,
                         reference_texts)
from model.checkpoint import copy_tokenizer, save_model
from model.config import GPTConfig
from model.gpt import GPT

REPO = Path(__file__).resolve().parents[1]


def _demo_texts(name: str, limit: int) -> list[str]:
    path = REPO / "demo" / "text" / name
    if not path.exists():
        pytest.skip(f"needs demo/text/{name}")
    lines = path.read_text(encoding="utf-8").splitlines()[:limit]
    return [json.loads(line)["text"] for line in lines if line.strip()]


def _tokenizer(root: Path, docs: list[str], **cfg) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizer import TokenizerConfig, train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(len(docs))], "text": docs}), root / "train.parquet")
    train_tokenizer([str(root / "train.parquet")], root / "tokenizer", TokenizerConfig(**cfg))
    return root / "tokenizer"


def _model_dir(root: Path, tok_dir: Path, vocab: int, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_depth(1, vocab_size=vocab, seq_len=64))
    save_model(root, model)
    copy_tokenizer(tok_dir, root)
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random depth-1 model with a 2,048-piece byte-fallback tokenizer trained on demo zh + en text."""
    root = tmp_path_factory.mktemp("evalmodel")
    docs = _demo_texts("en_c4.jsonl", 40) + _demo_texts("zh_wiki_cmrc2018.jsonl", 60)
    tok = _tokenizer(root / "tok", docs, vocab_size=2048)
    from model.tok import load_tokenizer

    return _model_dir(root / "model", tok, load_tokenizer(tok).vocab_size)


# --- shipped data -------------------------------------------------------------------------------


def test_every_shipped_task_loads_clean_with_enough_items() -> None:
    tasks = load_suite(list(SHIPPED))
    assert sum(t.lang == "en" for t in tasks) >= 6 and sum(t.lang == "zh" for t in tasks) >= 3
    for t in tasks:
        assert t.malformed == 0, (t.name, t.reasons)
        assert len(t.items) >= 100, t.name
        assert all(0 <= i.label < len(i.choices) for i in t.items)
        assert 0.2 <= t.chance <= 0.5, (t.name, t.chance)  # 2 to 5 choices
    sources = (REPO / "evals" / "SOURCES.md").read_text(encoding="utf-8")
    assert all(name in sources for name in SHIPPED)


def test_reference_texts_exist_for_both_languages() -> None:
    ref = reference_texts()
    assert set(ref) == {"en", "zh"}
    assert all(sum(len(t.encode()) for t in texts) > 50_000 for texts in ref.values())


# --- bad input ----------------------------------------------------------------------------------


def test_malformed_items_are_skipped_counted_and_named(tmp_path: Path) -> None:
    good = {"context": "Q", "choices": [" a", " b"], "label": 1}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "label": 2}),
        json.dumps({**good, "choices": [" only"]}),
        json.dumps({**good, "context": ["one", "two", "three"]}),
        json.dumps({**good, "label": True}),
        "",
        json.dumps({**good, "context": ["x", "y"]}),
    ]
    (tmp_path / "mine.jsonl").write_text("\n".join(lines), encoding="utf-8")
    task = load_extra(f"mine={tmp_path / 'mine.jsonl'}")
    assert task.name == "mine" and len(task.items) == 2 and task.malformed == 5
    assert [r.split(":")[1] for r in task.reasons] == ["2", "3", "4", "5", "6"]
    assert "label" in task.reasons[1] and "JSON" not in task.reasons[1]


def test_csv_sets_load_as_extra_tasks_with_bad_rows_counted(tmp_path: Path) -> None:
    sub = tmp_path / "cmmlu_like"
    sub.mkdir()
    (sub / "history.csv").write_text(
        ",Question,A,B,C,D,Answer\n0,秦朝统一六国是在哪一年？,公元前221年,公元前206年,公元前202年,公元前230年,A\n"
        "1,缺答案的题,甲,乙,丙,丁,\n", encoding="utf-8")
    task = load_extra(str(sub))
    assert extra_files([f"mine={sub}"]) == [str(sub / "history.csv")]
    assert (task.name, task.lang, len(task.items), task.malformed) == ("cmmlu_like", "zh", 1, 1)
    assert task.items[0].choices[0] == "公元前221年" and task.items[0].label == 0
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_extra(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="unknown eval task"):
        load_suite(["no_such_task"])


def test_items_the_vocabulary_cannot_encode_are_counted(tmp_path: Path) -> None:
    """An English-only tokenizer without byte fallback maps Chinese to <unk>: those items are counted, not scored."""
    docs = _demo_texts("en_c4.jsonl", 40)
    tok = _tokenizer(tmp_path / "tok", docs, vocab_size=512, byte_fallback=False)
    from model.tok import load_tokenizer

    mdir = _model_dir(tmp_path / "model", tok, load_tokenizer(tok).vocab_size)
    scorer = Scorer.load(mdir, "cpu")
    task = Task("mixed", "en", [Item("a", ["The sky is"] * 2, [" blue", " green"], 0),
                                Item("b", ["天空是"] * 2, ["蓝色的", "绿色的"], 0)])
    res = score_task(scorer, task)
    assert res["items"] == 1 and res["unencodable"] == 1


# --- scoring ------------------------------------------------------------------------------------


def test_batched_loglikelihoods_equal_one_sequence_at_a_time(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir, "cpu", batch_size=5)
    task = load_jsonl_task(DATA_DIR / "hellaswag.jsonl", "hellaswag", "en")
    requests = [scorer.split(c, ch) for it in task.items[:6] for c, ch in zip(it.contexts, it.choices)]
    got = scorer.loglikelihoods(requests)
    for (ctx, cont), ll in zip(requests, got):
        ids = torch.tensor([scorer.tok.bos_id, *ctx, *cont][-(scorer.max_len + 1):])
        with torch.no_grad():
            logp = F.log_softmax(scorer.model(ids[None, :-1])[0][0], dim=-1)
        n = min(len(cont), len(ids) - 1)
        want = float(logp[torch.arange(len(ids) - 1 - n, len(ids) - 1), ids[-n:]].sum())
        assert ll == pytest.approx(want, abs=1e-4)


def test_batched_text_nats_equal_window_by_window(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir, "cpu", batch_size=3)
    texts = [t[:700] for t in reference_texts()["zh"][:2] + reference_texts()["en"][:2]]
    want = 0.0
    for text in texts:
        ids = [scorer.tok.bos_id, *scorer.tok.encode(text)]
        for s in range(0, len(ids) - 1, scorer.max_len):
            w = torch.tensor(ids[s:s + scorer.max_len + 1])[None]
            with torch.no_grad():
                want += float(F.cross_entropy(scorer.model(w[:, :-1])[0][0], w[0, 1:], reduction="sum"))
    assert scorer.nats(texts) == pytest.approx(want, rel=1e-5)


def test_continuation_split_matches_whole_text(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir, "cpu")
    for ctx, choice in [("Question: Why?\nAnswer:", " Because."), ("那人打开水龙头，所以", "水流了出来。"),
                        ("ends with a space ", "word")]:
        c, k = scorer.split(ctx, choice)
        assert k and scorer.tok.decode(c + k) == ctx + choice


def test_centred_accuracy_and_aggregate() -> None:
    assert centred(0.25, 0.25) == 0 and centred(1.0, 0.5) == 1 and centred(0.0, 0.5) == -1
    agg = aggregate({"a": {"lang": "en", "items": 5, "centred": 0.2, "centred_norm": 0.1},
                     "b": {"lang": "zh", "items": 5, "centred": 0.4, "centred_norm": 0.3},
                     "c": {"lang": "zh", "items": 0, "centred": 0.0, "centred_norm": 0.0}})
    assert agg["centred"] == pytest.approx(0.3) and agg["centred_zh"] == pytest.approx(0.4)


def test_run_eval_writes_json_table_plot(model_dir: Path, tmp_path: Path) -> None:
    cfg = EvalConfig(tasks=["copa", "winogrande", "xcopa_zh"], max_items=12, device="cpu")
    stats = run_eval(model_dir, tmp_path, cfg)
    result = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert set(result["tasks"]) == {"copa", "winogrande", "xcopa_zh"}
    assert all(t["items"] == 12 and 0 <= t["acc"] <= 1 for t in result["tasks"].values())
    # A random model predicts near-uniformly over its vocabulary: bits per byte = log2(vocab) x tokens / bytes of
    # the reference texts (measured within 0.1 %; a wrong byte count, log base or window would be far off).
    from evals.tasks import reference_texts
    from model.checkpoint import TOKENIZER_DIR
    from model.tok import load_tokenizer

    tok = load_tokenizer(model_dir / TOKENIZER_DIR)
    for lang, texts in reference_texts().items():
        uniform = math.log2(tok.vocab_size) * sum(len(tok.encode(t)) for t in texts) / sum(
            len(t.encode("utf-8")) for t in texts)
        assert stats[f"bpb_{lang}"] == pytest.approx(uniform, rel=0.02), lang
    assert stats["items"] == 36 and stats["malformed"] == 0 and math.isfinite(stats["centred"])
    for t in result["tasks"].values():
        assert t["acc_stderr"] == pytest.approx(math.sqrt(t["acc"] * (1 - t["acc"]) / 12))
    assert "| copa | en | 12 |" in (tmp_path / "eval.md").read_text(encoding="utf-8")
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert "](data:image/png;base64," in eval_markdown(tmp_path)


@pytest.fixture(scope="module")
def trained_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture model's tokenizer, a depth-1 model pretrained for 80 steps on demo zh + en text."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from model.config import PretrainConfig
    from model.pretrain import pretrain
    from tokenizer import TokensConfig, encode_corpus

    root = tmp_path_factory.mktemp("trained")
    docs = _demo_texts("en_c4.jsonl", 80) + _demo_texts("zh_wiki_cmrc2018.jsonl", 120)
    for split, part in (("train", docs[1:]), ("val", docs[:1] * 4)):
        pq.write_table(pa.table({"id": [str(i) for i in range(len(part))], "text": part}), root / f"{split}.parquet")
    files = {s: [str(root / f"{s}.parquet")] for s in ("train", "val")}
    tok_dir = model_dir / "tokenizer"
    encode_corpus(files, tok_dir, root / "tokens", TokensConfig(num_workers=1))
    cfg = PretrainConfig(depth=1, seq_len=64, batch_size=8, steps=80, warmup_steps=5, eval_every=80,
                         eval_batches=1, device="cpu")
    pretrain(root / "tokens", root / "model", cfg, tokenizer_dir=tok_dir)
    return root / "model"


@pytest.mark.slow
def test_a_trained_model_beats_a_random_one_on_reference_bits_per_byte(
    model_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    """Training on zh + en text (not the reference texts) lowers reference bits per byte in both languages."""
    off = dict(tasks=["copa"], max_items=4, device="cpu")
    before = run_eval(model_dir, tmp_path / "e0", EvalConfig(**off))
    after = run_eval(trained_dir, tmp_path / "e1", EvalConfig(**off))
    assert after["bpb_en"] < before["bpb_en"] and after["bpb_zh"] < before["bpb_zh"]


LM_EVAL_TASKS = ["copa", "arc_easy", "piqa", "xcopa_zh"]
LM_EVAL_ITEMS = 100
WINDOW = 256  # > the longest PIQA solution in tokens of the 2,048-piece tokenizer; lm-eval refuses longer ones


def _lm_eval_yaml(name: str) -> str:
    """An lm-eval task over our shipped JSONL file: the same items, contexts and choices, no delimiter added."""
    return (f"task: lmpipe_{name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
            f"    test: {DATA_DIR / (name + '.jsonl')}\ntest_split: test\noutput_type: multiple_choice\n"
            "doc_to_text: context\ndoc_to_choice: choices\ndoc_to_target: label\ntarget_delimiter: ''\n"
            "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")


@pytest.mark.slow
def test_accuracy_equals_lm_eval_on_the_exported_model(
    trained_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EleutherAI's lm-eval on the Hugging Face export (model.export, what `lmpipe export` writes), its tasks
    pointed at our files, gives our accuracies to +-0.005 (measured: equal)."""
    pytest.importorskip("lm_eval")
    pytest.importorskip("transformers")
    for var, value in (("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets")), ("HF_DATASETS_OFFLINE", "1"),
                       ("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        monkeypatch.setenv(var, value)
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from model.export import main as export_main

    assert export_main([str(trained_dir), str(tmp_path / "hf")]) == 0
    (tmp_path / "tasks").mkdir()
    for name in LM_EVAL_TASKS:
        (tmp_path / "tasks" / f"lmpipe_{name}.yaml").write_text(_lm_eval_yaml(name), encoding="utf-8")
    theirs = simple_evaluate(
        model="hf", model_args=f"pretrained={tmp_path / 'hf'},add_bos_token=True,dtype=float32,max_length={WINDOW}",
        tasks=[f"lmpipe_{n}" for n in LM_EVAL_TASKS], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
        limit=LM_EVAL_ITEMS, device="cpu", batch_size=16, num_fewshot=0,
    )["results"]
    ours = run_eval(trained_dir, tmp_path / "ours", EvalConfig(
        tasks=LM_EVAL_TASKS, max_items=LM_EVAL_ITEMS, device="cpu", reference_bpb=False, window=WINDOW))
    mine = json.loads((tmp_path / "ours" / "eval.json").read_text(encoding="utf-8"))["tasks"]
    assert ours["unencodable"] == 0
    for name in LM_EVAL_TASKS:
        got = theirs[f"lmpipe_{name}"]
        print(f"{name}: ours acc {mine[name]['acc']:.3f} acc_norm {mine[name]['acc_norm']:.3f}; "
              f"lm-eval acc {got['acc,none']:.3f} acc_norm {got['acc_norm,none']:.3f}")
        assert mine[name]["acc"] == pytest.approx(got["acc,none"], abs=0.005), name
        assert mine[name]["acc_norm"] == pytest.approx(got["acc_norm,none"], abs=0.005), name
