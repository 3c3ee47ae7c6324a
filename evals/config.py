"""Config of the eval stage (`eval.*` keys), a frozen Pydantic model like every stage's.

It goes into the eval artifact's id, so a changed task list or item cap gives a new artifact. Device and batch
size change how fast, never what is computed (fp32 scoring), but are kept here for the CLI's ``--set``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evals.tasks import SHIPPED


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(
        default_factory=lambda: list(SHIPPED),
        description="Shipped multiple-choice tasks to run (evals/SOURCES.md lists them).",
    )
    extra_tasks: list[str] = Field(
        default_factory=list,
        description="Your own task files, [NAME=]PATH: JSONL in the evals/tasks.py schema, or C-Eval/CMMLU-style "
        "CSV (a file, or a directory of per-subject files). Sets we may not ship (non-commercial) go here.",
    )
    max_items: int | None = Field(
        default=None, gt=0, description="Score only the first N items of each task (quick runs; None: all)."
    )
    reference_bpb: bool = Field(default=True, description="Bits per byte on the shipped held-out reference texts.")
    window: int | None = Field(
        default=None, gt=0, description="Tokens one scored sequence may hold; longer ones keep their end "
        "(None: the model's pretraining seq_len; RoPE extends past it, untrained).",
    )
    batch_size: int = Field(default=32, gt=0, description="Sequences scored per forward pass.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N | mps.")
