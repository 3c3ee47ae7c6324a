"""End-to-end tests of the model package on the repo's real demo data (demo/text, demo/sft):
chat template and loaders, pretraining (the loss must fall), SFT, generation and the CLIs.

The tokenizer directory and token shards are built with the tokenizer package's own functions
(`train_tokenizer`, `encode_corpus`), so the contract between the two packages is exercised too.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model.chat import encode_conversation, encode_prompt, load_conversations, record_to_messages
from model.config import GPTConfig, PretrainConfig, SFTConfig
from model.generate import ChatSession, Generator, chat_loop, generate
from model.pretrain import pretrain
from model.sft import sft
from model.tok import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
Trained = tuple[Path, dict[str, Any]]  # (model directory, stats)
MODEL_FILES = {"model.safetensors", "model_config.json", "train_config.json", "metrics.jsonl", "loss.png", "tokenizer"}


def demo_path(*parts: str) -> Path:
    p = DEMO.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs demo/{'/'.join(parts)}")
    return p


def read_jsonl_texts(path: Path, limit: int) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.append(json.loads(line)["text"])
        if len(texts) == limit:
            break
    return texts


def build_corpus(splits: dict[str, list[str]], root: Path, vocab_size: int) -> dict[str, Path]:
    """Documents -> Parquet -> tokenizer directory + token shards, through the tokenizer package's own
    functions, so these tests exercise the real contract between the two packages."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizer import TokenizerConfig, TokensConfig, encode_corpus, train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, docs in splits.items():
        path = root / f"{name}-00000.parquet"
        pq.write_table(pa.table({"id": [f"{name}{i}" for i in range(len(docs))], "text": docs}), path)
        files[name] = [str(path)]
    train_tokenizer(files["train"], root / "tokenizer", TokenizerConfig(vocab_size=vocab_size))
    encode_corpus(files, root / "tokenizer", root / "tokens", TokensConfig(num_workers=1))
    return {"tokenizer": root / "tokenizer", "tokens": root / "tokens"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """~250 KB of real zh+en text -> a 4096-token tokenizer and train/val token shards."""
    docs = read_jsonl_texts(demo_path("text", "en_c4.jsonl"), 60) + read_jsonl_texts(
        demo_path("text", "zh_wiki_cmrc2018.jsonl"), 120
    )
    val = docs[::10]
    train = [d for i, d in enumerate(docs) if i % 10]
    return build_corpus({"train": train, "val": val}, tmp_path_factory.mktemp("corpus"), 4096)


@pytest.fixture(scope="module")
def pretrained(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    out = tmp_path_factory.mktemp("pretrain")
    cfg = PretrainConfig(
        depth=1, seq_len=64, batch_size=8, steps=60, warmup_steps=6, eval_every=30, eval_batches=2, device="cpu"
    )
    return out, pretrain(corpus["tokens"], out, cfg, tokenizer_dir=corpus["tokenizer"])


@pytest.fixture(scope="module")
def finetuned(pretrained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    out = tmp_path_factory.mktemp("sft")
    files = [str(demo_path("sft", "identity_zh_en.json")), str(demo_path("sft", "en_instructions_rasbt.json"))]
    cfg = SFTConfig(steps=20, batch_size=4, max_len=64, warmup_steps=2, eval_batches=2, device="cpu")
    return out, sft(pretrained[0], files, out, cfg)


# --- chat template ------------------------------------------------------------------------------


def test_assistant_only_loss_mask_exact_positions(corpus: dict[str, Path]) -> None:
    tok = load_tokenizer(corpus["tokenizer"])
    s, u1, a1, u2, a2 = (tok.encode(t) for t in ("Be brief.", "你好", "Hello there", "2+2?", "四"))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "四"},
    ]
    ids, mask = encode_conversation(tok, messages)
    assert ids == [1, 4, *s, 7, 5, *u1, 7, 6, *a1, 7, 5, *u2, 7, 6, *a2, 7]
    expected = [0, 0, *[0] * len(s), 0, 0, *[0] * len(u1), 0, 0, *[1] * len(a1), 1]
    expected += [0, *[0] * len(u2), 0, 0, *[1] * len(a2), 1]
    assert mask == expected
    # the 1s are exactly the assistant bodies and their closing <|end|>
    assert [i for i, m in zip(ids, mask) if m] == [*a1, 7, *a2, 7]
    assert encode_prompt(tok, messages[:2]) == [1, 4, *s, 7, 5, *u1, 7, 6]
    # role markers are control symbols: typing them as text never produces their ids
    assert not set(tok.encode("<|user|> <|end|> <|assistant|>")) & set(range(4, 8))


def test_record_formats_and_drops(tmp_path: Path) -> None:
    alpaca = record_to_messages({"instruction": "Translate", "input": "猫", "output": "cat"})
    assert alpaca == [{"role": "user", "content": "Translate\n猫"}, {"role": "assistant", "content": "cat"}]
    sharegpt = record_to_messages(
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "I am {{name}} by {{author}}"}]}
    )
    assert sharegpt[-1] == {"role": "assistant", "content": "I am lmpipe by lmpipe"}
    belle = record_to_messages({"instruction": "写诗", "input": "", "output": "春眠不觉晓"})
    assert belle[0]["content"] == "写诗"
    dolly = record_to_messages({"instruction": "Q", "context": "C", "response": "R", "category": "qa"})
    assert dolly[0]["content"] == "Q\nC"
    turns = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
             {"role": "assistant", "content": "A"}]
    messages = record_to_messages({"messages": turns})
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]

    path = tmp_path / "mixed.jsonl"
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "a", "output": ""}, {"foo": 1}, "x"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    convs, drops = load_conversations([path])
    assert len(convs) == 1 and drops == {"empty_reply": 1, "unknown_format": 1, "not_an_object": 2}


def test_identity_placeholders_are_filled() -> None:
    convs, drops = load_conversations([demo_path("sft", "identity_zh_en.json")])
    assert len(convs) == 91 and not drops
    text = json.dumps(convs, ensure_ascii=False)
    assert "{{" not in text and "lmpipe" in text


# --- pretrain / sft / generate --------------------------------------------------------------------


def test_pretrain_loss_falls_and_writes_model_dir(pretrained: Trained, corpus: dict[str, Path]) -> None:
    out, stats = pretrained
    assert stats["steps"] == 60 and stats["device"] == "cpu" and stats["params"] > 0
    assert stats["first_loss"] > math.log(4096) - 0.5  # starts near uniform
    assert stats["final_loss"] < stats["first_loss"] - 1.0
    assert stats["val_loss"] < stats["first_loss"] - 1.0
    assert 0 < stats["val_bpb"] < 8 and stats["tokens_per_s"] > 0
    assert MODEL_FILES <= {p.name for p in out.iterdir()}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert [r["step"] for r in rows if "val_loss" in r] == [30, 60]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = GPTConfig.model_validate_json((out / "model_config.json").read_text())
    assert cfg.vocab_size == 4096 and cfg.n_layer == 1
    assert PretrainConfig.model_validate_json((out / "train_config.json").read_text()).steps == 60
    copied = (out / "tokenizer" / "tokenizer.model").read_bytes()
    assert copied == (corpus["tokenizer"] / "tokenizer.model").read_bytes()


def test_sft_trains_on_chat_data_and_writes_model_dir(finetuned: Trained) -> None:
    out, stats = finetuned
    assert stats["steps"] == 20
    assert math.isfinite(stats["val_loss"]) and stats["val_loss"] < stats["val_loss_initial"]
    assert stats["examples"]["train"] > stats["examples"]["val"] > 0
    assert MODEL_FILES <= {p.name for p in out.iterdir()}
    assert SFTConfig.model_validate_json((out / "train_config.json").read_text()).steps == 20
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 20


def test_generate_returns_text(finetuned: Trained, pretrained: Trained) -> None:
    model_dir = finetuned[0]
    reply = generate(model_dir, "Who are you?", max_new_tokens=24)
    assert isinstance(reply, str)
    assert reply == generate(model_dir, "Who are you?", max_new_tokens=24)  # seeded
    assert "<|" not in reply  # control ids are not rendered
    raw = generate(pretrained[0], "The city", max_new_tokens=16, chat=False, temperature=0.0)
    assert isinstance(raw, str) and raw


def test_chat_session_keeps_model_and_history(finetuned: Trained, pretrained: Trained) -> None:
    gen = Generator(finetuned[0])
    session = ChatSession(gen, max_new_tokens=16)
    first = session.send("你好")
    assert first == generate(finetuned[0], "你好", max_new_tokens=16).strip()  # turn 1 == the one-shot reply
    session.send("Who are you?")
    assert [m["role"] for m in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.history[0]["content"] == "你好" and session.history[1]["content"] == first
    session.history.append({"role": "user", "content": "And then?"})
    assert session.max_context == 64  # default: the model's maximum, its pretraining seq_len
    session.max_context = 512
    assert len(session._prompt_messages()) == 5  # the whole history goes into the prompt
    session.max_context = session.max_new_tokens + 8  # too small: only the newest user turn is kept
    assert session._prompt_messages() == [{"role": "user", "content": "And then?"}]

    out = io.StringIO()
    assert chat_loop(gen, io.StringIO("hi\n\n/reset\nthere\n"), out, max_new_tokens=8) == 2  # EOF ends
    same = ChatSession(gen, max_new_tokens=8)  # the same turns in process (a reply may itself hold "\n")
    first_reply = same.send("hi")
    same.reset()
    assert out.getvalue() == first_reply + "\n(history cleared)\n" + same.send("there") + "\n"
    raw = io.StringIO()
    assert chat_loop(Generator(pretrained[0]), io.StringIO("The city\n/exit\nignored\n"), raw, chat=False) == 1


def test_lmpipe_chat_reads_stdin_until_exit(finetuned: Trained, tmp_path: Path) -> None:
    from storage.store import ArtifactStore

    def copy_model(out: Path) -> dict[str, Any]:
        shutil.copytree(finetuned[0], out, dirs_exist_ok=True)
        return {}

    home = tmp_path / "home"
    m, _ = ArtifactStore(str(home)).build("sft", "test", {}, [], copy_model)
    p = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--home", str(home), "chat", m.id, "--max-new-tokens", "8"],
        input="hello\n你是谁？\n/exit\nnot read\n", cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    session = ChatSession(Generator(finetuned[0]), max_new_tokens=8)
    expected = [session.send("hello"), session.send("你是谁？")]  # the same two turns, in process
    assert p.stdout == "".join(a + "\n" for a in expected)  # nothing after /exit, no banner off a terminal
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "--home", str(home), "chat", "sft-nope"],
                         input="", cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("lmpipe: error:")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_clis_print_one_json_line(corpus: dict[str, Path], tmp_path: Path) -> None:
    tiny = {"depth": 1, "seq_len": 32, "batch_size": 2, "steps": 3, "eval_every": 3, "eval_batches": 1, "device": "cpu"}
    p = run_module(
        "model.pretrain", "--tokens", str(corpus["tokens"]), "--out", str(tmp_path / "pt"),
        "--config", json.dumps(tiny), "--tokenizer", str(corpus["tokenizer"]),
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["steps"] == 3

    cfg_file = tmp_path / "sft.json"
    sft_cfg = {"steps": 2, "batch_size": 2, "max_len": 32, "warmup_steps": 0, "eval_batches": 1, "device": "cpu"}
    cfg_file.write_text(json.dumps(sft_cfg))
    p = run_module(
        "model.sft", "--base", str(tmp_path / "pt"), "--data", str(demo_path("sft", "identity_zh_en.json")),
        "--out", str(tmp_path / "sft"), "--config", str(cfg_file),
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["steps"] == 2

    bad = run_module(
        "model.pretrain", "--tokens", str(corpus["tokens"]), "--out", str(tmp_path / "x"), "--config", '{"stepz": 1}'
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


def test_exact_resume_n_steps_equal_half_plus_resume_plus_half(corpus: dict[str, Path], tmp_path: Path) -> None:
    """N steps == N/2 steps + checkpoint + resume + N/2 steps: identical per-step losses and final weights."""
    import json

    import torch
    from safetensors.torch import load_file

    cfg = PretrainConfig(depth=1, steps=12, batch_size=4, seq_len=32, warmup_steps=3, eval_every=100,
                         eval_batches=1)
    full = pretrain(corpus["tokens"], tmp_path / "full", cfg)
    half = pretrain(corpus["tokens"], tmp_path / "half", cfg, stop_after=6)
    assert half["steps"] == 6 and (tmp_path / "half" / "checkpoint" / "state.json").exists()
    resumed = pretrain(corpus["tokens"], tmp_path / "resumed", cfg, resume_from=tmp_path / "half" / "checkpoint")

    def losses(d: Path) -> list[float]:
        return [json.loads(ln)["loss"] for ln in (d / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "half") + losses(tmp_path / "resumed") == losses(tmp_path / "full")
    assert resumed["final_loss"] == full["final_loss"] and resumed["first_loss"] == full["first_loss"]
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- bad input to training ----------------------------------------------------------------------------------


def test_shards_of_another_tokenizer_are_refused(corpus: dict[str, Path], tmp_path: Path) -> None:
    """meta.json of the shards says another vocabulary than the tokenizer passed in: refused up front."""
    other = tmp_path / "tokens"
    shutil.copytree(corpus["tokens"], other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "vocab_size": 8192}))
    cfg = PretrainConfig(depth=1, seq_len=32, batch_size=2, steps=2, device="cpu")
    with pytest.raises(ValueError, match=r"written by another tokenizer; pass the tokenizer that encoded them"):
        pretrain(other, tmp_path / "out", cfg, tokenizer_dir=corpus["tokenizer"])
    assert not (tmp_path / "out" / "metrics.jsonl").exists()

    # Same vocabulary size, another tokenizer: caught when meta.json records the tokenizer's SHA-256.
    (other / "meta.json").write_text(json.dumps({**meta, "tokenizer_sha256": "0" * 64}))
    with pytest.raises(ValueError, match=r"is not the tokenizer that wrote .* pass that tokenizer"):
        pretrain(other, tmp_path / "out", cfg, tokenizer_dir=corpus["tokenizer"])
    import hashlib

    digest = hashlib.sha256((corpus["tokenizer"] / "tokenizer.model").read_bytes()).hexdigest()
    (other / "meta.json").write_text(json.dumps({**meta, "tokenizer_sha256": digest}))
    assert pretrain(other, tmp_path / "ok", cfg, tokenizer_dir=corpus["tokenizer"]) is not None


def test_sft_max_len_over_the_model_maximum_is_an_error(pretrained: Trained, tmp_path: Path) -> None:
    files = [str(demo_path("sft", "identity_zh_en.json"))]
    cfg = SFTConfig(steps=1, batch_size=2, max_len=65, device="cpu")  # the base model saw 64 positions
    with pytest.raises(ValueError, match=r"sft.max_len=65 is over the base model's maximum sequence length 64"):
        sft(pretrained[0], files, tmp_path / "a", cfg)
    stats = sft(pretrained[0], files, tmp_path / "b", SFTConfig(steps=1, batch_size=2, eval_batches=1, device="cpu"))
    assert stats["max_len"] == 64  # None = the base model's seq_len


def test_sft_rows_without_an_assistant_turn_are_counted_and_an_empty_set_is_an_error(
    pretrained: Trained, tmp_path: Path
) -> None:
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}]},  # ShareGPT, the user's turn only
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}]},  # ends on a user turn
        {"instruction": "Say hi", "output": "hi"},
        {"instruction": "Say bye", "output": "bye"},
        {"instruction": "Say yes", "output": "yes"},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = SFTConfig(steps=2, batch_size=2, eval_batches=1, device="cpu")
    stats = sft(pretrained[0], [str(path)], tmp_path / "out", cfg)
    assert stats["dropped"] == {"no_final_assistant_turn": 2}
    assert stats["examples"]["train"] + stats["examples"]["val"] == 3

    only_prompts = tmp_path / "prompts.jsonl"
    only_prompts.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    with pytest.raises(ValueError, match=r"only 0 usable conversations .*no_final_assistant_turn': 2"):
        sft(pretrained[0], [str(only_prompts)], tmp_path / "none", cfg)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="only 0 usable conversations"):
        sft(pretrained[0], [str(empty)], tmp_path / "none", cfg)


def test_training_markdown_has_the_metrics_table_and_the_inlined_loss_png(pretrained: Trained, tmp_path: Path) -> None:
    """What the pretrain/SFT flows publish as the `<kind>-training` Prefect artifact (flows.prefect_flows)."""
    import base64
    import re

    from model.report import training_markdown

    out, stats = pretrained
    md = training_markdown(out, "pretrain")
    assert md is not None and md.startswith("## pretrain")
    header = next(line for line in md.splitlines() if line.startswith("| step"))
    assert "val_loss" in header and "val_bpb" in header and "tokens_per_s" in header
    steps = [line.split("|")[1].strip() for line in md.splitlines() if re.match(r"\| \d", line)]
    assert steps == ["1", "30", "60"]  # first, the evaluation at 30, last (also an evaluation)
    data = re.search(r"!\[loss curve\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert data is not None and base64.b64decode(data.group(1)) == (out / "loss.png").read_bytes()
    assert training_markdown(tmp_path, "none") is None  # no metrics.jsonl: nothing to publish
