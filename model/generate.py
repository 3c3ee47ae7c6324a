"""Text generation from a model directory, one-shot or as an interactive chat.

`Generator(model_dir)` loads the weights and the directory's own tokenizer once; `reply(messages)`
and `continue_text(prompt)` sample with a KV cache (temperature, top-k, nucleus). A reply is asked for
with the chat template (the conversation, then `<|assistant|>`) and stops at `<|end|>`; raw text is
continued after BOS. Either way a BOS or EOS also stops it: BOS means "a new document starts", which
is never part of an answer. Control ids are dropped from the returned text.

`ChatSession` keeps the multi-turn history of one conversation (the whole history is in the prompt
of every turn; the oldest turns are dropped when it outgrows `max_context` tokens, by default the
model's seq_len), and
`chat_loop` reads user lines from a stream until `/exit` or EOF (`/reset` starts over). With
chat=False (a pretrain model, which never learnt the template) each line is continued as raw text.

`generate(model_dir, prompt, ...)` is the one-shot form (loads the model per call).

CLI: python -m model.generate --model DIR --prompt TEXT [--max-new-tokens N] [--raw]
     python -m model.generate --model DIR --interactive [--raw]      (also: lmpipe chat ID)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import torch

from model import checkpoint
from model.chat import END, Message, encode_prompt
from model.runtime import resolve_device
from model.tok import load_tokenizer


class Generator:
    """A model directory loaded once (tokenizer + weights on a device) for many generations."""

    def __init__(self, model_dir: Path | str, device: str = "auto") -> None:
        model_dir = Path(model_dir)
        self.tok = load_tokenizer(model_dir / checkpoint.TOKENIZER_DIR)
        self.device = resolve_device(device)
        self.model = checkpoint.load_model(model_dir, self.device).eval()
        self.end_id = self.tok.special_tokens[END]

    @torch.no_grad()
    def _sample(
        self, ids: list[int], stops: set[int], max_new_tokens: int, temperature: float, top_k: int, top_p: float,
        generator: torch.Generator,
    ) -> str:
        out = self.model.generate(
            ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, stop_ids=stops,
            generator=generator,
        )
        if out and out[-1] in stops:
            out = out[:-1]
        return self.tok.decode(out)

    def reply(
        self, messages: list[Message], max_new_tokens: int = 64, temperature: float = 0.8, top_k: int = 50,
        top_p: float = 0.95, generator: torch.Generator | None = None,
    ) -> str:
        """The assistant's next turn after `messages` (chat template)."""
        ids = encode_prompt(self.tok, messages)
        stops = {self.end_id, self.tok.eos_id, self.tok.bos_id}
        return self._sample(ids, stops, max_new_tokens, temperature, top_k, top_p,
                            generator or torch.Generator().manual_seed(0))

    def continue_text(
        self, prompt: str, max_new_tokens: int = 64, temperature: float = 0.8, top_k: int = 50,
        top_p: float = 0.95, generator: torch.Generator | None = None,
    ) -> str:
        """A raw-text continuation of `prompt` (for pretrain models)."""
        ids = [self.tok.bos_id, *self.tok.encode(prompt)]
        return self._sample(ids, {self.tok.eos_id, self.tok.bos_id}, max_new_tokens, temperature, top_k, top_p,
                            generator or torch.Generator().manual_seed(0))


class ChatSession:
    """One conversation with a loaded `Generator`: `send(text)` adds a user turn, samples the
    assistant's reply with the whole history in the prompt, and records the reply."""

    def __init__(
        self, gen: Generator, system: str | None = None, max_new_tokens: int = 128, temperature: float = 0.8,
        seed: int = 0, max_context: int | None = None,
    ) -> None:
        self.gen, self.system = gen, system
        # Default: the model's maximum (its pretraining seq_len); positions past it were never trained.
        self.max_context = max_context or gen.model.config.seq_len
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.rng = torch.Generator().manual_seed(seed)  # one stream per session: turns differ, runs repeat
        self.history: list[Message] = []

    def reset(self) -> None:
        self.history = []

    def _prompt_messages(self) -> list[Message]:
        """System message + the most recent turns whose prompt fits in max_context - max_new_tokens
        (the newest user turn is always kept)."""
        head: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        turns = list(self.history)
        budget = max(1, self.max_context - self.max_new_tokens)
        while len(turns) > 1 and len(encode_prompt(self.gen.tok, head + turns)) > budget:
            turns = turns[2:] if len(turns) > 2 else turns[1:]  # drop the oldest user + assistant pair
        return head + turns

    def send(self, text: str) -> str:
        self.history.append({"role": "user", "content": text})
        answer = self.gen.reply(self._prompt_messages(), self.max_new_tokens, self.temperature, generator=self.rng)
        self.history.append({"role": "assistant", "content": answer.strip()})
        return answer.strip()


def chat_loop(
    gen: Generator, stdin: TextIO, stdout: TextIO, chat: bool = True, max_new_tokens: int = 128,
    temperature: float = 0.8, seed: int = 0, system: str | None = None,
) -> int:
    """Read user lines from stdin and answer each on stdout until `/exit`, `/quit` or EOF; `/reset`
    clears the history. Shows a `> ` prompt only on a terminal. Returns the number of turns."""
    session = ChatSession(gen, system, max_new_tokens, temperature, seed)
    interactive = stdin.isatty()
    turns = 0
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:  # EOF
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            session.reset()
            stdout.write("(history cleared)\n")
            continue
        if chat:
            answer = session.send(text)
        else:
            answer = gen.continue_text(text, max_new_tokens, temperature, generator=session.rng).strip()
        stdout.write(answer + "\n")
        stdout.flush()
        turns += 1
    return turns


def generate(
    model_dir: Path | str,
    prompt: str,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    seed: int = 0,
    chat: bool = True,
) -> str:
    """Sample a continuation of `prompt` (or an assistant reply to it when chat=True)."""
    gen = Generator(model_dir)
    rng = torch.Generator().manual_seed(seed)
    if chat:
        return gen.reply([{"role": "user", "content": prompt}], max_new_tokens, temperature, top_k, top_p, rng)
    return gen.continue_text(prompt, max_new_tokens, temperature, top_k, top_p, rng)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="model directory (pretrain or sft output)")
    p.add_argument("--prompt", help="one prompt (required unless --interactive)")
    p.add_argument("--interactive", action="store_true", help="chat: read turns from stdin until /exit or EOF")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="continue the prompt as text instead of chatting")
    args = p.parse_args(argv)
    if not args.interactive and args.prompt is None:
        p.error("--prompt is required unless --interactive")
    try:
        if args.interactive:
            gen = Generator(args.model)
            chat_loop(gen, sys.stdin, sys.stdout, not args.raw, args.max_new_tokens, args.temperature, args.seed)
            return 0
        text = generate(
            args.model, args.prompt, args.max_new_tokens, args.temperature, seed=args.seed, chat=not args.raw
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
