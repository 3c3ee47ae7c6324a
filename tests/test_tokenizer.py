"""Tests of tokenizer/: real sentencepiece training on a small real zh+en sample, the Tokenizer contract,
exact round trips, token shards and the stage functions.

Data: ../shared/data/text (zh and en corpora) when present, else the repo's demo/text;
the module is skipped when neither exists.
"""

from __future__ import annotations

import csv
import json
import random
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from tokenizer import SPECIAL_TOKENS, TokenizerConfig, TokensConfig, load, run_tokenizer, run_tokens
from tokenizer.train import _add_pieces, _append_pieces, _sample_sentences, split_lines

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
DEMO = Path(__file__).resolve().parents[1] / "demo" / "text"

CONTRACT_SPECIALS = {
    "unk": 0, "bos": 1, "eos": 2, "pad": 3,
    "<|system|>": 4, "<|user|>": 5, "<|assistant|>": 6, "<|end|>": 7,
}  # fmt: skip

TRICKY = [
    "",
    " ",
    "\n",
    " leading space",
    "trailing space ",
    "  two  spaces  between  ",
    "\ttab\tseparated\t",
    "\n\nleading and trailing newlines\n\n",
    "windows\r\nline endings\r\n",
    "def f(x):\n    if x:\n\treturn x  # mixed indent\n        pass\n",
    "中文测试：你好，世界！\n第二行。",
    "混合 English and 中文 with 123 数字",
    "emoji 😀👍🏽🇨🇳 and ZWJ 👩‍👩‍👧",
    "literal marker \u2581 and \u2581\u2581 twice, \u2581",
    "\u2581leading marker",
    "e\u0301 combining, ﬁ ligature, ｆｕｌｌ width, \u200b zero width",
    "\x00nul \x7f del \U0010ffff last code point \ufeff bom",
    "<|user|> hello <|end|> <s> </s> <pad> <unk>",
    "▅ sentencepiece's unk marker",
]


# ---------------------------------------------------------------------------------------------------- data


def _shared_docs() -> list[tuple[str, str]]:
    """A small, varied zh+en sample: wiki paragraphs, a textbook with code, reviews, web pages, a play."""
    docs: list[tuple[str, str]] = []
    with open(SHARED_TEXT / "zh/cmrc2018_wikipedia_contexts.jsonl", encoding="utf-8") as f:
        docs += [("zh", json.loads(line)["text"]) for line, _ in zip(f, range(400))]
    for md in sorted((SHARED_TEXT / "zh/happy-llm").glob("*.md"))[:6]:
        docs.append(("zh", md.read_text(encoding="utf-8")))
    with open(SHARED_TEXT / "zh/sophonplus_waimai_10k.csv", encoding="utf-8") as f:
        docs += [("zh", row["review"]) for row, _ in zip(csv.DictReader(f), range(1500)) if row["review"]]
    with open(SHARED_TEXT / "en/llamafactory_c4_demo.jsonl", encoding="utf-8") as f:
        docs += [("en", json.loads(line)["text"]) for line, _ in zip(f, range(400))]
    with open(SHARED_TEXT / "en/llamafactory_wiki_demo.txt", encoding="utf-8") as f:
        docs += [("en", line.rstrip("\n")) for line, _ in zip(f, range(30)) if line.strip()]
    play = (SHARED_TEXT / "en/tinyshakespeare.txt").read_text(encoding="utf-8")[:100_000]
    docs += [("en", scene) for scene in play.split("\n\n")]
    return docs


def _demo_docs() -> list[tuple[str, str]]:
    """Documents from demo/text: Parquet or JSONL with a text field, or .txt/.md files (one per paragraph)."""
    texts: list[str] = []
    for path in sorted(DEMO.rglob("*")) if DEMO.is_dir() else []:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            if "text" in table.column_names:
                texts += [t for t in table.column("text").to_pylist() if t]
        elif path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                texts += [t for line in f if line.strip() and isinstance(t := json.loads(line).get("text"), str)]
        elif path.suffix in (".txt", ".md"):
            texts += [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]

    def lang(text: str) -> str:
        han = sum("\u4e00" <= c <= "\u9fff" for c in text)
        return "zh" if han > 0.2 * max(1, len(text)) else "en"

    return [(lang(t), t) for t in texts]


@pytest.fixture(scope="module")
def docs() -> dict[str, list[tuple[str, str]]]:
    """{"train": [(lang, text)], "val": [...]}: every 10th document is held out."""
    if SHARED_TEXT.is_dir():
        all_docs = _shared_docs()
    else:
        all_docs = _demo_docs()
        if len(all_docs) < 50:
            pytest.skip("no text data: neither ../shared/data/text nor enough text under demo/text")
    all_docs = [(lang, text) for lang, text in all_docs if text]
    return {
        "train": [d for i, d in enumerate(all_docs) if i % 10],
        "val": [d for i, d in enumerate(all_docs) if i % 10 == 0],
    }


def _write_docs(path: Path, docs: list[tuple[str, str | None]], row_group_size: int = 300) -> None:
    table = pa.table(
        {
            "id": [f"doc-{i}" for i in range(len(docs))],
            "text": pa.array([text for _, text in docs], type=pa.string()),
            "lang": [lang for lang, _ in docs],
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")


@pytest.fixture(scope="module")
def mix_dir(tmp_path_factory, docs) -> Path:
    """A mix artifact: train/val Parquet, plus records that must be dropped (null and empty text)."""
    out = tmp_path_factory.mktemp("mix")
    _write_docs(out / "train-00000.parquet", docs["train"] + [("en", None), ("en", "")])
    _write_docs(out / "val-00000.parquet", [("zh", None)] + docs["val"] + [("en", "")])
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mix_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tokenizer")
    stats = run_tokenizer([str(mix_dir / "train-00000.parquet"), str(mix_dir / "val-00000.parquet")],
                          out, TokenizerConfig())  # fmt: skip
    return out, stats


@pytest.fixture(scope="module")
def tok(trained):
    return load(trained[0])


# ----------------------------------------------------------------------------------------------- tokenizer


def test_directory_layout_and_special_tokens(trained, tok):
    out, stats = trained
    assert {p.name for p in out.iterdir()} == {"tokenizer.model", "tokenizer.vocab", "special_tokens.json", "hf"}
    assert {p.name for p in (out / "hf").iterdir()} == {
        "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    }  # fmt: skip
    assert (out / "hf/tokenizer.model").read_bytes() == (out / "tokenizer.model").read_bytes()
    hf_config = json.loads((out / "hf/tokenizer_config.json").read_text())
    assert (hf_config["bos_token"], hf_config["eos_token"], hf_config["add_prefix_space"]) == ("<s>", "</s>", False)
    assert hf_config["additional_special_tokens"] == ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    assert json.loads((out / "special_tokens.json").read_text()) == CONTRACT_SPECIALS
    assert tok.special_tokens == CONTRACT_SPECIALS == SPECIAL_TOKENS
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, 3, 4096)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    for name in ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]:
        assert sp.piece_to_id(name) == CONTRACT_SPECIALS[name] and sp.is_control(CONTRACT_SPECIALS[name])
    # The vocab file has one line per id, even though some pieces contain a newline.
    vocab_lines = (out / "tokenizer.vocab").read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == 4096 and vocab_lines[5].split("\t")[0] == "<|user|>"
    assert "\\n" in [line.split("\t")[0] for line in vocab_lines]  # newline is a piece of its own


def test_train_stats(trained, docs):
    _, stats = trained
    assert stats["vocab_size"] == 4096
    assert stats["sentences_used"] == stats["sentences_seen"] > 1000  # below the 200k cap: all lines used
    # Below the cap, repeated lines of the train split are skipped exactly (the play's speaker names and code
    # fences repeat in ../shared's sample; the demo text may have none).
    max_bytes = TokenizerConfig().max_sentence_length
    lines = [line for _, text in docs["train"] for line in split_lines(text, max_bytes)]
    assert stats["duplicate_lines"] == len(lines) - len(set(lines))
    assert stats["sentences_seen"] == len(set(lines))
    assert stats["reserved_char_lines"] == 0 and stats["long_lines_cut"] >= 0
    assert 0.98 <= stats["effective_character_coverage"] <= 0.998
    assert stats["train_seconds"] > 0
    langs = stats["languages"]
    assert set(langs) == {"zh", "en"}
    assert langs["zh"]["chars_per_token"] > 1.0  # common Han characters are single tokens
    assert langs["en"]["bytes_per_token"] > 2.0
    json.dumps(stats)  # JSON-serialisable


def test_load_accepts_directory_or_model_file(trained):
    out, _ = trained
    assert load(out / "tokenizer.model").encode("hello world") == load(out).encode("hello world")
    with pytest.raises(FileNotFoundError, match="run the tokenizer stage"):
        load(out / "missing")


@pytest.mark.parametrize("text", TRICKY)
def test_exact_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.unk_id not in ids


def test_round_trip_random_unicode(tok):
    rng = random.Random(0)
    pools = [(0, 0x7F), (0x80, 0x7FF), (0x4E00, 0x9FFF), (0x800, 0xD7FF), (0xE000, 0x10FFFF)]
    for _ in range(2000):
        chars = []
        for _ in range(rng.randint(0, 20)):
            if rng.random() < 0.3:
                chars.append(rng.choice(" \n\t\u2581"))
            else:
                lo, hi = rng.choice(pools)
                chars.append(chr(rng.randint(lo, hi)))
        text = "".join(chars)
        assert tok.decode(tok.encode(text)) == text, repr(text)


def test_no_unk_on_held_out_text(tok, docs):
    held_out = [text for _, text in docs["val"]] + TRICKY
    for text in held_out:
        assert tok.unk_id not in tok.encode(text)
    assert tok.encode_batch(held_out) == [tok.encode(t) for t in held_out]


def test_plain_text_never_encodes_to_control_ids(tok):
    for text in ["<|user|>", "<|system|>hi<|end|>", "<s></s><pad>", "<|assistant|>\n"]:
        ids = tok.encode(text)
        assert not set(ids) & set(range(8)), (text, ids)
        assert tok.decode(ids) == text
    # Control ids are dropped on decode.
    hello = tok.encode("hello")
    assert tok.decode([1, 5, *hello, 7, 2, 3]) == "hello"


def test_newlines_and_indentation_are_learned_pieces(tok, docs):
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    assert "\n" in pieces and len(tok.encode("\n")) == 1
    if sum(text.count("\n    ") for _, text in docs["train"]) >= 100:  # the sample has indented code
        assert "\u2581\u2581\u2581\u2581" in pieces and len(tok.encode("    ")) == 1


def test_digits_are_single_tokens_and_a_space_joins_the_first(tok):
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    assert all(sum(c.isdigit() for c in p) <= 1 for p in pieces if not p.startswith("<"))
    assert [tok.id_to_piece(i) for i in tok.encode(" 1999")] == ["\u25811", "9", "9", "9"]
    for text in ["in 2024年3月, 10.5% of 1,000", "x=42\n  7"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert sum(c.isdigit() for c in text) == sum(any(c.isdigit() for c in tok.id_to_piece(i)) for i in ids)


def test_a_space_joins_punctuation_and_a_digit_joins_what_follows(tok, docs):
    pieces = set(tok.id_to_piece(i) for i in range(tok.vocab_size))
    # " @" and " )" as in byte-level BPEs, for every punctuation character that is a piece itself (a rare one,
    # "`" in the demo text, is byte-encoded, and transformers' export could not build "▁`" from two pieces).
    assert {"\u2581" + c for c in string.punctuation if c in pieces} <= pieces
    assert not {"\u2581" + c for c in string.punctuation if c not in pieces} & pieces
    assert {"\u2581" + c for c in "@(),.-'\""} <= pieces
    assert [tok.id_to_piece(i) for i in tok.encode("x @-@ y")][:3] == ["x", "\u2581@", "-"]
    # Digit + c for the letters that most often follow a digit in the training text (年 in this sample);
    # never punctuation or symbols: decimals, separators and percentages keep bare digits.
    followers = Counter(m for _, text in docs["train"] for m in re.findall(r"[0-9]([^0-9\s\u2581])", text))
    top = [c for c, _ in followers.most_common() if c in pieces and c.isalpha()][:10]
    assert "年" in top
    assert {d + c for c in top for d in "0123456789"} <= pieces
    assert not any(p[0].isdigit() and not p[1:].isalpha() for p in pieces if len(p) > 1 and not p.startswith("<"))
    assert [tok.id_to_piece(i) for i in tok.encode("2024年")] == ["2", "0", "2", "4年"]
    assert [tok.id_to_piece(i) for i in tok.encode("10.5%")] == ["1", "0", ".", "5", "%"]


def test_added_pieces_replace_the_last_learned_merges(trained):
    proto = (trained[0] / "tokenizer.model").read_bytes()
    before = spm.SentencePieceProcessor(model_proto=proto)
    special = (before.is_control, before.is_byte, before.is_unknown, before.is_unused)
    learned = [
        i for i in range(before.get_piece_size())
        if len(before.id_to_piece(i)) > 1 and not any(f(i) for f in special)
    ]  # fmt: skip
    lowest = sorted(learned, key=lambda i: (before.get_score(i), -i))[:2]
    after = spm.SentencePieceProcessor(model_proto=_add_pieces(proto, ["qj", "\u2581@", "qj", "zx"]))
    assert after.get_piece_size() == before.get_piece_size()  # "▁@" was already there: two pieces added
    old = {before.id_to_piece(i) for i in range(before.get_piece_size())}
    new = {after.id_to_piece(i) for i in range(after.get_piece_size())}
    assert new - old == {"qj", "zx"} and old - new == {before.id_to_piece(i) for i in lowest}
    assert after.encode("qj zx", out_type=str) == ["qj", "\u2581", "zx"]
    assert after.get_score(after.piece_to_id("zx")) < min(before.get_score(i) for i in range(before.get_piece_size()))


def test_lowest_priority_merges_never_add_tokens(trained, docs):
    # Why added pieces cost only the merges they replace: as the last merges, they apply once no learned merge
    # is left, so against the same vocabulary without them no text gets more tokens.
    proto = (trained[0] / "tokenizer.model").read_bytes()
    before = spm.SentencePieceProcessor(model_proto=proto)
    extra = ["e\u2581", "\u2581t", "的，", "s.", "ng\u2581the"]
    missing = [p for p in extra if before.piece_to_id(p) == before.unk_id()]
    after = spm.SentencePieceProcessor(model_proto=_append_pieces(proto, missing))
    texts = [text for _, text in docs["val"]]
    counts = [(len(before.encode(t)), len(after.encode(t))) for t in texts]
    assert all(a <= b for b, a in counts) and sum(a for _, a in counts) < sum(b for b, _ in counts)
    assert all(after.decode(after.encode(t)) == t for t in texts if "\u2581" not in t)


def test_line_by_line_encoding_gives_the_ids_of_whole_texts(trained, tok, docs):
    # The wrapper encodes line by line when no piece crosses a newline; plain sentencepiece encodes whole texts.
    assert tok.encodes_by_line
    sp = spm.SentencePieceProcessor(model_file=str(trained[0] / "tokenizer.model"))
    texts = [text for _, text in docs["val"]] + [t for t in TRICKY if "\u2581" not in t]
    texts += ["a\n  \n b\n\n\n    c  \n", "\n\n", "  x\n  y", "中文。\n\n  第二段\r\n"]
    assert any(text.count("\n") > 3 for text in texts)
    assert [tok.encode(t) for t in texts] == [sp.encode(t) for t in texts]
    assert tok.encode_batch(texts) == sp.encode(texts)


def test_repeated_lines_are_sampled_once(tmp_path):
    path = tmp_path / "train-00000.parquet"
    _write_docs(path, [("en", "ROMEO:\nHello there.\n"), ("en", "ROMEO:\nGoodbye.\n"), ("zh", "ROMEO:\n你好\n")])
    sample, counts = _sample_sentences([str(path)], TokenizerConfig())
    assert [line for _, line in sample] == ["ROMEO:\n", "Hello there.\n", "Goodbye.\n", "你好\n"]
    assert counts["duplicate_lines"] == 2 and counts["sentences_seen"] == 4 and counts["docs_read"] == 3
    sample, counts = _sample_sentences([str(path)], TokenizerConfig(dedup_lines=False))
    assert len(sample) == counts["sentences_seen"] == 6 and counts["duplicate_lines"] == 0


def test_too_small_vocab_for_the_alphabet_is_a_clear_error(tmp_path, mix_dir, docs):
    zh_only = tmp_path / "train-00000.parquet"
    _write_docs(zh_only, [d for d in docs["train"] if d[0] == "zh"])
    with pytest.raises(ValueError, match="raise vocab_size"):
        run_tokenizer([str(zh_only)], tmp_path / "t", TokenizerConfig(vocab_size=512))


def test_empty_corpus_is_a_clear_error(tmp_path):
    empty = tmp_path / "train-00000.parquet"
    _write_docs(empty, [("en", ""), ("en", None)])
    with pytest.raises(ValueError, match="no non-empty text"):
        run_tokenizer([str(empty)], tmp_path / "t", TokenizerConfig())


def test_corpus_too_small_for_the_vocab_is_a_clear_error(tmp_path):
    tiny = tmp_path / "train-00000.parquet"
    _write_docs(tiny, [("en", "the quick brown fox jumps over the lazy dog\n")] * 20)
    with pytest.raises(ValueError, match=r"too small for vocab_size 4096.*lower vocab_size to <= \d+"):
        run_tokenizer([str(tiny)], tmp_path / "t", TokenizerConfig())


def test_vocab_over_the_shard_dtype_is_a_clear_error(tmp_path, mix_dir, trained):
    from tokenizer.shards import _shard_dtype

    assert _shard_dtype(65536, "auto").name == "uint16" and _shard_dtype(65537, "auto").name == "uint32"
    with pytest.raises(ValueError, match="does not fit uint16.*tokens.dtype=auto or uint32"):
        _shard_dtype(70_000, "uint16")
    # uint32 on request, for a vocabulary that uint16 would hold.
    stats = run_tokens([str(mix_dir)], tmp_path, TokensConfig(dtype="uint32"), trained[0])
    assert stats["dtype"] == json.loads((tmp_path / "meta.json").read_text())["dtype"] == "uint32"


def test_split_lines_keeps_text_and_bounds_bytes():
    text = "short line\n\n" + "长" * 3000 + "\nend"
    lines = list(split_lines(text, 1000))
    assert "".join(lines) == text
    assert all(len(line.encode()) <= 1000 for line in lines)
    assert lines[0] == "short line\n\n"
    # A line keeps its newlines and the indentation of the next line.
    assert list(split_lines("def f():\n    return 1\n\n  x", 100)) == ["def f():\n    ", "return 1\n\n  ", "x"]


def test_training_is_deterministic(tmp_path, mix_dir):
    # The cap is below the corpus' line count, so this also covers the seeded sampler.
    cfg = TokenizerConfig(vocab_size=2048, input_sentence_size=1500, seed=7)
    first = run_tokenizer([str(mix_dir)], tmp_path / "a", cfg)
    run_tokenizer([str(mix_dir)], tmp_path / "b", cfg)
    assert first["sentences_used"] == 1500 < first["sentences_seen"]
    model = (tmp_path / "a/tokenizer.model").read_bytes()
    assert (tmp_path / "b/tokenizer.model").read_bytes() == model
    # The thread count is recorded in the model file but does not change the learned pieces.
    run_tokenizer([str(mix_dir)], tmp_path / "c", cfg.model_copy(update={"num_threads": 1}))
    pieces = [[load(tmp_path / d).id_to_piece(i) for i in range(2048)] for d in ("a", "c")]
    assert pieces[0] == pieces[1]
    # Another seed samples other lines, hence another tokenizer.
    run_tokenizer([str(mix_dir)], tmp_path / "d", cfg.model_copy(update={"seed": 8}))
    assert (tmp_path / "d/tokenizer.model").read_bytes() != model


# -------------------------------------------------------------------------------------------------- shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory, mix_dir, trained) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tokens")
    stats = run_tokens([str(mix_dir)], out, TokensConfig(), trained[0])
    return out, stats


def _read_split(out: Path, meta: dict, split: str) -> list[np.ndarray]:
    """Every document of `split`, cut out of the .bin files with the idx offsets."""
    documents = []
    for name in meta["splits"][split]["files"]:
        data = np.fromfile(out / name, dtype=np.dtype(meta["dtype"]).newbyteorder("<"))
        starts = np.load(out / name.replace(".bin", ".idx.npy"))
        assert starts.dtype == np.int64 and starts[0] == 0
        ends = np.append(starts[1:], len(data))
        documents += [data[s:e] for s, e in zip(starts, ends)]
    return documents


def test_shards_decode_back_to_the_documents(shards, docs, tok):
    out, stats = shards
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "uint16"
    for split in ("train", "val"):
        documents = _read_split(out, meta, split)
        expected = [text for _, text in docs[split]]
        assert len(documents) == len(expected) == meta["splits"][split]["docs"]
        for doc, text in zip(documents, expected):
            assert doc.dtype == np.uint16 and doc[0] == tok.bos_id and tok.bos_id not in doc[1:]
            assert tok.decode(doc.tolist()) == text
        assert meta["splits"][split]["tokens"] == sum(len(d) for d in documents)
        assert meta["splits"][split]["bytes"] == sum(len(t.encode("utf-8")) for t in expected)
        assert stats["splits"][split]["dropped"] == {"null_text": 1, "empty_text": 1}


def test_meta_json_matches_the_contract(shards, tok):
    out, _ = shards
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta) == {"dtype", "vocab_size", "bos_id", "eos_id", "splits"}
    assert (meta["vocab_size"], meta["bos_id"], meta["eos_id"]) == (tok.vocab_size, tok.bos_id, tok.eos_id)
    assert set(meta["splits"]) == {"train", "val"}
    for split, info in meta["splits"].items():
        assert set(info) == {"files", "tokens", "docs", "bytes"}
        assert info["files"] == [f"{split}-00000.bin"]
        assert (out / f"{split}-00000.bin").stat().st_size == 2 * info["tokens"]
    assert {p.name for p in out.iterdir()} == {
        "meta.json", "train-00000.bin", "train-00000.idx.npy", "val-00000.bin", "val-00000.idx.npy",
    }  # fmt: skip


def test_worker_pool_and_rollover_give_the_same_tokens(tmp_path, mix_dir, trained, shards):
    out, _ = shards
    cfg = TokensConfig(num_workers=2, min_docs_parallel=0, shard_tokens=50_000, batch_rows=64)
    stats = run_tokens([str(mix_dir)], tmp_path, cfg, trained[0])
    assert stats["workers"] == 2
    meta = json.loads((tmp_path / "meta.json").read_text())
    reference = json.loads((out / "meta.json").read_text())
    assert len(meta["splits"]["train"]["files"]) > 1
    for split in ("train", "val"):
        assert {k: v for k, v in meta["splits"][split].items() if k != "files"} == {
            k: v for k, v in reference["splits"][split].items() if k != "files"
        }
        sizes = [(tmp_path / name).stat().st_size // 2 for name in meta["splits"][split]["files"]]
        # A file only exceeds the limit when it holds a single document longer than the limit.
        for name, size in zip(meta["splits"][split]["files"], sizes):
            assert size <= 50_000 or len(np.load(tmp_path / name.replace(".bin", ".idx.npy"))) == 1
        got = [d.tolist() for d in _read_split(tmp_path, meta, split)]
        assert got == [d.tolist() for d in _read_split(out, reference, split)]


# -------------------------------------------------------------------------------------------------- stages


def test_stage_input_errors(tmp_path, mix_dir, trained):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_tokenizer([str(tmp_path / "nope.parquet")], tmp_path / "t", TokenizerConfig())
    with pytest.raises(FileNotFoundError, match="train-"):
        run_tokenizer([str(mix_dir / "val-00000.parquet")], tmp_path / "t", TokenizerConfig())
    with pytest.raises(FileNotFoundError, match="run the tokenizer stage"):
        run_tokens([str(mix_dir)], tmp_path / "s", TokensConfig(), tmp_path / "no-tokenizer")
    odd = tmp_path / "extra-00000.parquet"
    _write_docs(odd, [("en", "hello")])
    with pytest.raises(ValueError, match="train-"):
        run_tokens([str(mix_dir), str(odd)], tmp_path / "s", TokensConfig(), trained[0])
    no_text = tmp_path / "train-00000.parquet"
    pq.write_table(pa.table({"id": ["a"]}), no_text)
    with pytest.raises(ValueError, match="no 'text' column"):
        run_tokens([str(no_text)], tmp_path / "s", TokensConfig(), trained[0])


def test_configs_are_frozen_and_strict():
    cfg = TokenizerConfig()
    assert (cfg.vocab_size, cfg.model_type, cfg.byte_fallback, cfg.remove_extra_whitespaces) == (
        4096, "bpe", True, False,
    )  # fmt: skip
    with pytest.raises(ValueError):
        TokenizerConfig(vocab_sise=100)
    with pytest.raises(ValueError):
        cfg.vocab_size = 8192
    assert TokensConfig().num_workers == 2
    with pytest.raises(ValueError):
        TokensConfig(workers=3)
