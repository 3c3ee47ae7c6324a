#!/usr/bin/env bash
# The GPU half of the training work in one command, on a bare CUDA machine with no internet:
#   1. bench/train.py at seq 2048 for d12 and d20: lmpipe (bf16 autocast + torch.compile + fused AdamW), lmpipe eager,
#      transformers' LlamaForCausalLM of the same shapes (SDPA), and lmpipe fed by the token-shard loader from real
#      shards (the tiny preset's tokens artifact) against fixed synthetic ids: tokens/s, MFU against the card's
#      dense bf16 peak (model.runtime.BF16_PEAK_FLOPS, named in the output), peak memory;
#   2. the `gpu`-marked tests (tests/test_gpu.py): bf16 vs fp32, compile vs eager, resume after a kill, FSDP2 on one
#      rank, the DAG's pretrain and sft stages through the CLI.
# Budget: <= 8 minutes on one H100 (bench <= 5 min, tests <= 2.5 min, each phase under its own timeout).
#
# Step 1, once, on a machine with PyPI access and the repository's .venv (here):
#
#     bash bench/train_gpu.sh --prepare
#
#   writes bench/out/wheels (the Python packages the GPU image lacks, as cp312 manylinux wheels, at the versions
#   this .venv resolved: pydantic and its parts for model/config.py; datatrove, loguru, dill, multiprocess for the
#   DAG's CLI) and bench/out/gpu-store (an artifact store with the tiny preset's corpus, tokenizer and tokens,
#   ~6 MB: the real token shards and the DAG test's starting point). bench/out/ is gitignored, hence `carry`.
#
# Step 2, on the GPU machine (the device tool; python3 there holds torch, transformers, numpy, safetensors, pytest,
# pyarrow, sentencepiece, matplotlib):
#
#     run(command="bash bench/train_gpu.sh", carry=["bench/out/wheels", "bench/out/gpu-store"], timeout_s=560)
#
# It prints what it found and what it installs (from the carried wheels only, into /tmp/site), then the tables, and
# leaves in $OUT: train_gpu.md (the tables), train_gpu.json (the rows), gpu_tests.txt and gpu_tolerances.json
# (the differences the gpu tests measured). Extra arguments go to bench/train.py (e.g. --presets d12).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=bench/out/wheels
STORE=bench/out/gpu-store

if [[ "${1:-}" == "--prepare" ]]; then
  VENV=${VENV:-.venv/bin/python}
  pkgs=(pydantic pydantic-core annotated-types typing-inspection typing-extensions datatrove loguru dill multiprocess)
  pins=$("$VENV" -c 'import sys, importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' "${pkgs[@]}")
  echo "wheels: $pins" >&2
  # shellcheck disable=SC2086  # the pins are words
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$WHEELS" $pins
  if [[ ! -d "$STORE/tokens" ]]; then  # the tiny preset's corpus -> tokenizer -> tokens (~1-2 min on 2 cores)
    LMPIPE_HOME=$PWD/$STORE "$VENV" -m flows.cli run corpus --preset tiny --no-prefect >/dev/null
    mix=$(ls "$STORE/mix" | head -n 1)
    LMPIPE_HOME=$PWD/$STORE "$VENV" -m flows.cli run tokenizer --preset tiny --no-prefect --from "$mix" >/dev/null
  fi
  ls -l "$WHEELS"; du -sh "$WHEELS" "$STORE"
  echo 'now: run(command="bash bench/train_gpu.sh", carry=["bench/out/wheels", "bench/out/gpu-store"], timeout_s=560)'
  exit 0
fi

PY=${PYTHON:-python3}
OUTDIR=${OUT:-bench/out}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
NEEDED="torch transformers numpy safetensors pydantic pytest datatrove loguru dill multiprocess sentencepiece pyarrow fsspec yaml matplotlib"
missing() { "$PY" -c 'import importlib.util, sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $NEEDED; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
miss=$(missing)
if [[ -n "$miss" ]]; then
  echo "not installed: $miss" >&2
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "installing the carried wheels from $WHEELS into /tmp/site (no index)" >&2
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site:$PYTHONPATH
    miss=$(missing)
  fi
  if [[ -n "$miss" ]]; then
    echo "still missing: $miss (run 'bash bench/train_gpu.sh --prepare' where PyPI is reachable and carry $WHEELS)" >&2
    exit 2
  fi
fi
"$PY" -c "import torch, transformers, pydantic; print('python', __import__('sys').version.split()[0], '| torch', torch.__version__, '| transformers', transformers.__version__, '| pydantic', pydantic.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
tokens=$(ls -d "$STORE"/tokens/tokens-* 2>/dev/null | head -n 1 || true)
[[ -n "$tokens" ]] || echo "no carried store ($STORE): the loader rows use synthetic shards, the DAG test skips" >&2

# 1. The bench. Rows in order of importance (a timeout keeps what finished: rows stream to train_gpu.rows.jsonl).
start=$SECONDS
timeout 300 "$PY" bench/train.py --device cuda --presets d12,d20 --seq-len 2048 --steps 20 --warmup 5 \
  --variants "lmpipe,HF Llama,lmpipe + loader,lmpipe eager" ${tokens:+--tokens "$tokens"} \
  --json "$OUTDIR/train_gpu.json" "$@" 2> >(tee "$OUTDIR/train_gpu.rows.jsonl" >&2) | tee "$OUTDIR/train_gpu.md" \
  || echo "bench/train.py ended with $? after $((SECONDS - start)) s (124 = its 300 s timeout); rows so far in train_gpu.rows.jsonl" >&2

# 2. The gpu tests (the DAG test copies the carried store; OUT receives the measured tolerances).
LMPIPE_GPU_STORE=$PWD/$STORE OUT=$OUTDIR timeout 170 "$PY" -m pytest tests/test_gpu.py -m gpu -q -rs -p no:cacheprovider \
  2>&1 | tee "$OUTDIR/gpu_tests.txt" || true
[[ -f "$OUTDIR/gpu_tolerances.json" ]] && cat "$OUTDIR/gpu_tolerances.json"
echo "train_gpu.sh: $SECONDS s in all"
