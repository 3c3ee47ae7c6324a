#!/usr/bin/env bash
# bench/train.py (and a short real pretraining run) on the lent GPU machine, in one command.
#
# The GPU machine (the `device` tool; /work/.library/device/KINDS.md) has python3 3.12 with torch (2.11+cu130
# when last read), transformers, numpy and safetensors, but no pydantic, which model/config.py needs, and no
# internet. So, once, on a machine with PyPI access (here), in the repo root:
#
#     bash bench/train_gpu.sh --fetch-wheels      # pydantic + its deps as cp312 x86_64 wheels -> bench/out/wheels
#
# then ask the device tool for (bench/out/ is gitignored, hence `carry`):
#
#     run(command="bash bench/train_gpu.sh", carry=["bench/out/wheels"], timeout_s=600)
#
# It prints the markdown table (d12 and d20 at seq 2048: lmpipe with bf16 + compile + fused AdamW, lmpipe
# eager, HF LlamaForCausalLM) and leaves $OUT/train_gpu.md, $OUT/train_gpu.json and $OUT/pretrain_gpu.json
# (stats of `python -m model.pretrain` on synthetic shards: the real loop's bf16/compile/MFU on CUDA).
# Extra arguments go to bench/train.py, e.g. `bash bench/train_gpu.sh --presets d12 --batch-size 32`.
# Budget: ~1-2 min per row with compilation; 6 rows + the pretrain check fit one 10-minute call.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/out/wheels

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  # The versions this repo's venv resolved (pyproject pins pydantic>=2); pure-Python except pydantic-core.
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" \
    pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
  ls -l "$WHEELS"
  exit 0
fi

PY=${PYTHON:-python3}
if ! "$PY" -c "import pydantic" 2>/dev/null; then
  ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "no pydantic and no $WHEELS: run 'bash bench/train_gpu.sh --fetch-wheels' first and carry $WHEELS" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
OUTDIR=${OUT:-bench/out}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

"$PY" bench/train.py --device cuda --json "$OUTDIR/train_gpu.json" "$@" | tee "$OUTDIR/train_gpu.md"

# The real pretraining loop on CUDA (bf16 autocast, torch.compile, fused AdamW, MFU in metrics) on
# synthetic shards: 2M random tokens, vocab 32768, d12 at seq 2048.
"$PY" - "$OUTDIR" <<'EOF'
import json, subprocess, sys, tempfile
from pathlib import Path
import numpy as np
out = Path(sys.argv[1])
root = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
splits = {}
for split, n in (("train", 2_000_000), ("val", 200_000)):
    toks = rng.integers(3, 32768, n, dtype=np.uint16)
    starts = np.arange(0, n, 1000, dtype=np.int64)
    toks[starts] = 1  # a BOS every 1000 tokens
    toks.tofile(root / f"{split}-00000.bin")
    np.save(root / f"{split}-00000.idx.npy", starts)
    splits[split] = {"files": [f"{split}-00000.bin"], "tokens": n, "docs": len(starts), "bytes": 4 * n}
(root / "meta.json").write_text(json.dumps({"dtype": "uint16", "vocab_size": 32768, "bos_id": 1, "eos_id": 2, "splits": splits}))
cfg = {"depth": 12, "seq_len": 2048, "batch_size": 16, "steps": 40, "warmup_steps": 5, "eval_every": 40,
       "eval_batches": 2, "compile": True, "device": "cuda"}
p = subprocess.run([sys.executable, "-m", "model.pretrain", "--tokens", str(root), "--out", str(root / "model"),
                    "--config", json.dumps(cfg)], capture_output=True, text=True)
print(p.stderr[-3000:], file=sys.stderr)
if p.returncode == 0:
    (out / "pretrain_gpu.json").write_text(p.stdout.strip().splitlines()[-1])
    print("model.pretrain on CUDA:", p.stdout.strip().splitlines()[-1])
sys.exit(p.returncode)
EOF
