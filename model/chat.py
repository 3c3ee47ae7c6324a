"""The chat template over token ids, and loaders for common instruction-tuning formats.

A conversation is encoded as

    [bos] <|system|> text <|end|> <|user|> text <|end|> <|assistant|> text <|end|> ...

where the role markers and `<|end|>` are sentencepiece control symbols: plain text can never encode
to them, so a user cannot forge a turn boundary by typing "<|assistant|>". The template works on
ids, not on strings, for the same reason.

The loss mask is 1 on assistant content and on the assistant's closing `<|end|>` (the model must
learn to stop), and 0 on everything else, including the `<|assistant|>` marker itself, which the
generator always supplies.

Supported record formats (a file is a JSON array or JSON Lines):
* Alpaca / BELLE: {instruction, input, output} (+ optional system, history [[user, assistant], ...]);
  a non-empty input is appended to the instruction on a new line.
* Dolly: {instruction, context, response} (context treated like Alpaca's input).
* ShareGPT / BELLE multi-turn: {conversations: [{from: human|gpt|system, value}], system?}.
* OpenAI-style: {messages: [{role, content}]}.
`{{name}}` and `{{author}}` placeholders (LLaMA-Factory identity data) become "lmpipe".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from model.tok import Tokenizer

ROLES = ("system", "user", "assistant")
END = "<|end|>"
PLACEHOLDERS = {"{{name}}": "lmpipe", "{{author}}": "lmpipe"}
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "system": "system",
}

Message = dict[str, str]


def _marker(tok: Tokenizer, role: str) -> int:
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}': use one of {ROLES}")
    return tok.special_tokens[f"<|{role}|>"]


def encode_conversation(tok: Tokenizer, messages: list[Message]) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation and its loss mask (same length, 1 = train on this id)."""
    end = tok.special_tokens[END]
    ids, mask = [tok.bos_id], [0]
    for m in messages:
        role, content = m["role"], m["content"]
        train = 1 if role == "assistant" else 0
        body = tok.encode(content)
        ids += [_marker(tok, role), *body, end]
        mask += [0, *([train] * len(body)), train]
    return ids, mask


def encode_prompt(tok: Tokenizer, messages: list[Message]) -> list[int]:
    """Ids of a conversation followed by `<|assistant|>`: the input that asks for the next reply."""
    ids, _ = encode_conversation(tok, messages)
    return ids + [_marker(tok, "assistant")]


def _fill(text: str) -> str:
    for key, value in PLACEHOLDERS.items():
        text = text.replace(key, value)
    return text


def record_to_messages(rec: Any) -> list[Message]:
    """One record of any supported format -> messages. Raises ValueError (with a reason) on records
    that cannot become a conversation with a non-empty assistant reply."""
    if not isinstance(rec, dict):
        raise ValueError("not_an_object")
    messages: list[Message] = []
    if "conversations" in rec or "messages" in rec:
        turns = rec.get("conversations", rec.get("messages"))
        if not isinstance(turns, list):
            raise ValueError("bad_turns")
        if isinstance(rec.get("system"), str) and rec["system"].strip():
            messages.append({"role": "system", "content": rec["system"]})
        for t in turns:
            if not isinstance(t, dict):
                raise ValueError("bad_turns")
            role = _SHAREGPT_ROLES.get(str(t.get("from", t.get("role", ""))).lower())
            content = t.get("value", t.get("content"))
            if role is None or not isinstance(content, str):
                raise ValueError("bad_turns")
            messages.append({"role": role, "content": content})
    elif "instruction" in rec and ("output" in rec or "response" in rec):
        instruction, output = rec["instruction"], rec.get("output", rec.get("response"))
        extra = rec.get("input", rec.get("context")) or ""
        if not isinstance(instruction, str) or not isinstance(output, str) or not isinstance(extra, str):
            raise ValueError("bad_fields")
        if isinstance(rec.get("system"), str) and rec["system"].strip():
            messages.append({"role": "system", "content": rec["system"]})
        for pair in rec.get("history") or []:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise ValueError("bad_history")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        user = instruction + ("\n" + extra if extra.strip() else "")
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    else:
        raise ValueError("unknown_format")

    messages = [{"role": m["role"], "content": _fill(m["content"]).strip()} for m in messages]
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body or body[-1]["role"] != "assistant":
        raise ValueError("no_final_assistant_turn")
    for i, m in enumerate(body):
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise ValueError("turns_not_alternating")
    if not all(m["content"] for m in body if m["role"] == "assistant"):
        raise ValueError("empty_reply")
    return messages


def read_records(path: Path | str) -> list[Any]:
    """A JSON array file or a JSON Lines file -> list of records."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SFT data file {path} not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:  # named, not a bare UnicodeDecodeError from deep in the loader
        raise ValueError(f"SFT data file {path} is not UTF-8 (byte {e.start}: {data[e.start:e.start + 4]!r}); "
                         "convert it, e.g. iconv -f GBK -t UTF-8") from None
    if text.lstrip().startswith("["):
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON array of records")
        return data
    records: list[Any] = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append(None)  # counted as a dropped record, not a crash
    return records


def load_conversations(paths: list[Path | str]) -> tuple[list[list[Message]], dict[str, int]]:
    """All conversations from the given files, and the drop counts by reason."""
    conversations: list[list[Message]] = []
    drops: Counter[str] = Counter()
    for path in paths:
        for rec in read_records(path):
            try:
                conversations.append(record_to_messages(rec))
            except ValueError as e:
                drops[str(e)] += 1
    return conversations, dict(drops)
