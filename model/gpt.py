"""A small Llama-style decoder-only transformer.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE), grouped-query attention through
`F.scaled_dot_product_attention` (flash / memory-efficient kernels where the device has them) and a
SwiGLU MLP; optionally tied input/output embeddings. No biases anywhere: they add parameters and
nothing measurable at this scale.

`forward(idx, targets, loss_mask)` returns `(logits, loss)`; targets equal to -100 (and positions
where `loss_mask == 0`) are ignored, which is how SFT trains on assistant tokens only.

Generation uses a `KVCache`: keys/values of past positions are stored per layer so each new token
costs one position of compute instead of re-running the whole prefix. `GPT.generate` works on token
ids; the text/chat wrapper lives in `model.generate`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import GPTConfig

IGNORE_INDEX = -100


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(length: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (length, head_dim // 2), computed in float32 for accuracy."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + head_dim/2) of x (B, H, T, D) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class KVCache:
    """Per-layer key/value buffers for incremental decoding.

    `pos` is the number of positions already stored; the model advances it after each forward.
    Buffers are allocated on first use so they get the dtype the model actually computes in
    (bf16 under autocast, fp32 otherwise).
    """

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer = n_layer
        self.max_len = max_len
        self.pos = 0
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H_kv, T, D) at positions pos..pos+T; return all keys/values so far."""
        B, H, T, D = k.shape
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} positions > max_len={self.max_len}")
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(B, H, self.max_len, D)
            self.v[layer] = v.new_zeros(B, H, self.max_len, D)
        kc, vc = self.k[layer], self.v[layer]
        assert kc is not None and vc is not None
        kc[:, :, self.pos : end] = k
        vc[:, :, self.pos : end] = v
        return kc[:, :, :end], vc[:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.wq = nn.Linear(cfg.n_embd, cfg.n_head * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.n_embd, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        start = 0
        if cache is not None:
            start = cache.pos
            k, v = cache.update(layer, k, v)
        # SDPA's is_causal aligns the mask top-left, which is only right when queries and keys start
        # at the same position. With a non-empty cache: one query sees everything; a chunk of
        # queries needs an explicit mask (query i may see keys 0..start+i).
        mask = None
        is_causal = start == 0 and T > 1
        if start > 0 and T > 1:
            key_pos = torch.arange(start + T, device=x.device)
            query_pos = torch.arange(start, start + T, device=x.device)
            mask = key_pos[None, :] <= query_pos[:, None]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=self.n_head != self.n_kv_head
        )
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)  # gate
        self.w3 = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)  # up
        self.w2 = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    """The decoder. Build with `GPT(GPTConfig.from_depth(...))`."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        # RoPE tables are derived data: non-persistent, so they never reach the checkpoint, and they
        # grow on demand (SFT may use longer sequences than pretraining did).
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta, torch.device("cpu"))
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2*n_layer)
        so the residual stream's variance does not grow with depth."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = residual_std if name.endswith(("wo.weight", "w2.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)
            else:
                nn.init.ones_(p)  # RMSNorm gains

    def _rope(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + length
        if end > self.rope_cos.shape[0]:
            cos, sin = rope_tables(
                max(end, 2 * self.rope_cos.shape[0]), self.config.head_dim, self.config.rope_theta, self.rope_cos.device
            )
            self.rope_cos, self.rope_sin = cos, sin
        return self.rope_cos[start:end], self.rope_sin[start:end]

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, vocab) and the mean cross-entropy over the kept
        target positions (None without targets). Targets == -100 are ignored, and so are positions
        where loss_mask == 0 when a mask is given."""
        _, T = idx.shape
        start = cache.pos if cache is not None else 0
        cos, sin = self._rope(start, T)
        x = self.tok_emb(idx)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, layer)
        logits = self.lm_head(self.norm(x))
        if cache is not None:
            cache.pos += T

        loss = None
        if targets is not None:
            if loss_mask is not None:
                targets = targets.masked_fill(loss_mask == 0, IGNORE_INDEX)
            # Cross-entropy in fp32: bf16 log-softmax over a large vocab loses precision.
            loss = F.cross_entropy(
                logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
            )
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        prompt: list[int],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_ids: set[int] | frozenset[int] = frozenset(),
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> list[int]:
        """Sample up to max_new_tokens after `prompt` (one sequence). temperature <= 0 is greedy.
        Stops after emitting a token in `stop_ids` (that token is included in the result).
        use_cache=False re-runs the full prefix every step: slow, kept as the reference."""
        if not prompt:
            raise ValueError("generate needs a non-empty prompt (start with the BOS id)")
        device = self.tok_emb.weight.device
        out: list[int] = []
        cache = KVCache(self.config.n_layer, len(prompt) + max_new_tokens) if use_cache else None
        seq = torch.tensor([prompt], dtype=torch.long, device=device)
        step_input = seq
        for _ in range(max_new_tokens):
            logits, _ = self(step_input if use_cache else seq, cache=cache)
            next_id = sample_next(logits[0, -1].float(), temperature, top_k, top_p, generator)
            out.append(next_id)
            if next_id in stop_ids:
                break
            step_input = torch.tensor([[next_id]], dtype=torch.long, device=device)
            if not use_cache:
                seq = torch.cat((seq, step_input), dim=1)
        return out


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> int:
    """Pick the next token id from 1-D logits: greedy, or temperature + top-k + nucleus sampling."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop tokens once the mass *before* them already exceeds top_p; the top token always stays.
        drop = (cum - sorted_logits.softmax(-1)) > top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    # multinomial on the CPU generator keeps sampling reproducible across devices.
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def count_params(model: nn.Module, exclude_embeddings: bool = False) -> int:
    """Number of unique parameters (tied weights counted once); optionally without the token
    embedding (the usual 'non-embedding' count used for scaling laws)."""
    n = sum(p.numel() for p in model.parameters())
    if exclude_embeddings and isinstance(model, GPT):
        n -= model.tok_emb.weight.numel()
    return n
