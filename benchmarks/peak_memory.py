"""Peak resident memory and time of one training job as the ``unlearn`` rule runs it, at a chosen precision, so that
the config's ``resources: mem_mb`` can be checked on CPUs with and without native bf16 (``--precision fp32`` is
what ``precision: auto`` picks where bf16 is emulated):

    python benchmarks/peak_memory.py --work-dir benchmarks/.cache/bench --method dpo --precision fp32

It trains on the embedded default's data (made by Snakemake in ``--work-dir`` when absent) and prints one line:
method, precision, steps, seconds, peak RSS in MB (the whole process: Python, libraries, weights, training).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from bench_methods import method_cfg, run_ours, training_data
from bench_workflow import INFERENCE_INPUTS, ensure, ensure_pairs
from run import default_config

from unlearning.methods import get_method
from unlearning.models import Manifest
from unlearning.parquet_io import read_parquet
from unlearning.prompting import PromptStyle
from unlearning.settings import prompt_style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--method", default="dpo")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    args = parser.parse_args()
    results = args.work_dir / "results"
    needs_pairs = get_method(args.method).needs_pairs
    if needs_pairs:
        ensure_pairs(args.work_dir)
    else:
        ensure(args.work_dir, INFERENCE_INPUTS)
    config = default_config()
    model = next(iter(config["models"]))
    cfg = method_cfg(config, model, args.method, None, args.precision)
    qa = read_parquet(results / "data" / "qa.parquet")
    pairs = read_parquet(results / "perturb" / "dpo_pairs.parquet") if needs_pairs else None
    start = time.perf_counter()
    out = run_ours(Manifest.load(results / "models" / model / "model.json"), cfg,
                   training_data(qa, pairs, cfg["retain_split"]), PromptStyle(**prompt_style(config, model)),
                   args.work_dir / "peak_memory" / args.method)  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.method} precision={args.precision} ({out['dtype']}): {len(out['losses'])} steps, "
          f"{time.perf_counter() - start:.1f} s, peak RSS {peak_mb:,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
