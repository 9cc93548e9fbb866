#!/usr/bin/env bash
# GPU checks of issues 5 and 10, for a session that is lent a GPU (device tool). Run from the repo root:
#   bash scripts/gpu_bench.sh            -> results under $OUT (or ./gpu-bench) as JSON lines
# The device has no internet: TRL and liger-kernel come from ../shared/bench/wheels; linguamix installs
# without dependencies on top of the image's torch/transformers.
set -uo pipefail
out=${OUT:-gpu-bench}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
wheels=${WHEELS:-../shared/bench/wheels}
python3 -m pip install -q --no-deps "$wheels"/*.whl 2>&1 | tail -2
python3 -m pip install -q --no-deps -e . 2>&1 | tail -2
python3 -c "import torch,transformers,trl;print('torch',torch.__version__,'transformers',transformers.__version__,'trl',trl.__version__)" | tee "$out/versions.txt"
export TOKENIZERS_PARALLELISM=false
# issue 10: linguamix vs TRL paper setting (padded + GC) and padded without GC, same invocation
timeout 300 python3 -m linguamix bench train --shape qwen3-0.6b --steps 12 --format json > "$out/bench_qwen3-0.6b.json" 2> "$out/bench_qwen3-0.6b.err"
timeout 200 python3 -m linguamix bench train --shape qwen3-1.7b --steps 10 --configs linguamix,trl_padded_gc --format json > "$out/bench_qwen3-1.7b.json" 2> "$out/bench_qwen3-1.7b.err"
tail -n 3 "$out"/*.err
cat "$out"/bench_*.json
