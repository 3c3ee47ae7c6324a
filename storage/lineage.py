"""Lineage: the tree from any artifact back to the raw input files, rendered from manifests alone.

``lmpipe lineage ID`` prints it; the flows attach the same text to the Prefect run as a markdown artifact.
"""

from __future__ import annotations

from typing import Any

from storage.store import ArtifactStore, Manifest

# The stats worth a glance in a tree line, in this order; anything else stays in `lmpipe show`.
_KEY_STATS = (
    "docs_in", "docs_out", "train.rows", "val.rows", "vocab_size", "languages.zh.chars_per_token",
    "languages.en.bytes_per_token", "splits.train.tokens", "splits.val.tokens", "examples.train", "params",
    "steps", "final_loss", "val_loss", "val_bpb",
)


def summarize_stats(stats: dict[str, Any], limit: int = 6) -> str:
    """A one-line ``key=value`` summary of the most telling stats."""
    items = []
    for k in _KEY_STATS:
        v: Any = stats
        for part in k.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if v is not None and not isinstance(v, (dict, list)):
            items.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        if len(items) >= limit:
            break
    return " ".join(items)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _damage_mark(m: Manifest, raw: dict[str, Any]) -> str:
    """'  DAMAGED: …' for a raw input in which the ingest reader met damage (``stats.read.files``), else ''."""
    name = str(raw.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
    read = ((m.stats.get("read") or {}).get("files") or {}).get(name) or {}
    if not read.get("damaged"):
        return ""
    return f"  DAMAGED: {read['damaged']} problem(s), {read.get('yielded', 0)} document(s) read (lmpipe show {m.id})"


def lineage_lines(store: ArtifactStore, artifact_id: str) -> list[str]:
    """The lineage tree as text lines (each shared ancestor printed in full once, then by reference)."""
    lines: list[str] = []
    seen: set[str] = set()

    def node(m: Manifest, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└── " if last else "├── ")
        again = m.id in seen
        lines.append(f"{prefix}{branch}{m.id}  [{m.kind}]  {summarize_stats(m.stats)}"
                     + ("  (see above)" if again else ""))
        if again:
            return
        seen.add(m.id)
        child_prefix = prefix + ("" if root else ("    " if last else "│   "))
        kids: list[Any] = [store.get(p) for p in m.parents] + list(m.inputs)
        for i, k in enumerate(kids):
            is_last = i == len(kids) - 1
            if isinstance(k, Manifest):
                node(k, child_prefix, is_last, False)
            else:
                size = _fmt_bytes(int(k.get("bytes", 0)))
                lines.append(f"{child_prefix}{'└── ' if is_last else '├── '}{k.get('path')}  "
                             f"[raw input]  {size} sha256={str(k.get('sha256', ''))[:12]}{_damage_mark(m, k)}")

    node(store.get(artifact_id), "", True, True)
    return lines


def raw_inputs(store: ArtifactStore, artifact_id: str) -> list[dict[str, Any]]:
    """Every raw input file reachable from an artifact."""
    out: dict[str, dict[str, Any]] = {}
    for m in store.ancestors(artifact_id):
        for i in m.inputs:
            out[i["path"]] = i
    return list(out.values())
