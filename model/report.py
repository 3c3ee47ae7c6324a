"""A training run's summary as markdown: a metrics table and the loss curve, for the Prefect UI.

`training_markdown(model_dir, title)` reads `metrics.jsonl` and `loss.png` of a model directory (layout in
docs/CONTRACTS.md) and returns markdown with the PNG inlined as a `data:image/png;base64,...` URI.

Why inline: Prefect 3.8.8's `create_image_artifact(image_url)` only stores a URL, and the artifact store
is not served over HTTP (a `file://` or `s3://` path does not load in the browser). The UI renders markdown
artifacts with `marked` (sanitize off), whose `<img>` takes a data URI, so one markdown artifact carries
both the table and the curve (~40 KB of base64 for the 700x400 PNG), and it survives the store moving.
Imports nothing heavy (no torch), so the orchestrator can call it cheaply.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

COLUMNS = ("step", "loss", "val_loss", "val_bpb", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_mb")
MAX_ROWS = 12
MAX_PNG_BYTES = 512 * 1024  # a curve is ~30 KB; anything much larger is not our plot, so it is linked, not inlined


def _pick_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first and last step, and the evaluations between (evenly thinned to MAX_ROWS)."""
    if not rows:
        return []
    keep = [rows[0], *(r for r in rows[1:-1] if r.get("val_loss") is not None), rows[-1]] if len(rows) > 1 else rows
    if len(keep) > MAX_ROWS:
        stride = (len(keep) - 2) / (MAX_ROWS - 2)
        keep = [keep[0], *(keep[1 + int(i * stride)] for i in range(MAX_ROWS - 2)), keep[-1]]
    return keep


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def training_markdown(model_dir: Path | str, title: str) -> str | None:
    """Markdown for one training run, or None when the directory has no metrics.jsonl."""
    model_dir = Path(model_dir)
    metrics = model_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    picked = _pick_rows(rows)
    cols = [c for c in COLUMNS if any(r.get(c) is not None for r in picked)]
    lines = [f"## {title}", "", f"{len(rows)} steps logged; first, evaluations and last shown.", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in picked]
    png = model_dir / "loss.png"
    if png.is_file() and png.stat().st_size <= MAX_PNG_BYTES:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        lines += ["", f"![loss curve](data:image/png;base64,{data})"]
    elif png.is_file():
        lines += ["", f"Loss curve: `{png}` ({png.stat().st_size} bytes, too large to inline)."]
    return "\n".join(lines) + "\n"
