"""Shared command-line plumbing of the training entry points (`python -m model.pretrain`, `model.sft`,
`model.generate`): config parsing, stderr logging, one JSON line of stats on stdout, one-line errors."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def parse_config(value: str | None, model: type[M]) -> M:
    """--config accepts a JSON file path or an inline JSON object; omitted means all defaults."""
    if value is None:
        return model()
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"config {value} is neither a JSON object nor an existing file")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config is not valid JSON: {e}") from e
    return model.model_validate(data)


def run_cli(main_fn: Callable[[list[str] | None], dict[str, Any] | None], argv: list[str] | None) -> int:
    """Shared CLI wrapper: stderr logging, one stats JSON line on stdout, one-line errors.
    A None result (a torchrun rank other than 0) prints nothing, so stdout's last line stays rank 0's stats."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    try:
        stats = main_fn(argv)
    except (ValueError, FileNotFoundError) as e:
        # pydantic's ValidationError is a ValueError; keep the message on one line.
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    if stats is not None:
        print(json.dumps(stats), flush=True)
    return 0
