"""Peak resident memory and time of one training job as the ``unlearn`` rule runs it, at a chosen precision, so that
the config's ``resources: mem_mb`` can be checked on CPUs with and without native bf16 (``--precision fp32`` is
what ``precision: auto`` picks where bf16 is emulated).

The job trains on the embedded default's data (made by Snakemake in the work dir when absent) in a fresh Python
process (``python -c``) that loads the weights and trains, as the rule's job does; the peak is that process's own
``ru_maxrss`` (the whole process: Python, libraries, weights, training), so nothing the benchmark's process did
before (Snakemake, other sections) counts.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from methods_speed import method_cfg, run_ours, training_data
from workflow_time import INFERENCE_INPUTS, TRAINING_INPUTS, ensure

from unlearning.config.settings import prompt_style
from unlearning.core.parquet_io import read_parquet
from unlearning.inference.prompting import PromptStyle
from unlearning.models.checkpoints import Manifest
from unlearning.training.methods import get_method

HERE = Path(__file__).resolve().parent
# the child process: this module, then one_job on the spec file written by in_fresh_process
CHILD = f"import sys; sys.path.insert(0, {str(HERE)!r}); from training_memory import one_job; one_job(sys.argv[1])"


def one_job(spec_file: str | os.PathLike) -> None:
    """The child's work: train as the spec says, then write steps, seconds, dtype and this process's peak RSS."""
    spec = json.loads(Path(spec_file).read_text())
    cfg, out_dir = spec["cfg"], Path(spec["out_dir"])
    qa = read_parquet(spec["qa"])
    pairs = read_parquet(spec["pairs"]) if spec["pairs"] else None
    out = run_ours(Manifest.load(spec["manifest"]), cfg, training_data(qa, pairs, cfg["retain_split"]),
                   PromptStyle(**spec["style"]), out_dir)  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {"steps": len(out["losses"]), "seconds": out["seconds"], "dtype": out["dtype"], "peak_rss_mb": peak_mb}
    (out_dir / "result.json").write_text(json.dumps(result))


def in_fresh_process(spec: dict[str, Any]) -> dict:
    """Run :func:`one_job` on ``spec`` (keys ``cfg``, ``manifest``, ``qa``, ``pairs`` (a path or None), ``style``,
    ``out_dir``) in a new ``python -c`` process; its steps, seconds, dtype and own peak RSS in MB."""
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").unlink(missing_ok=True)
    (out_dir / "job.json").write_text(json.dumps(spec, indent=2))
    subprocess.run([sys.executable, "-c", CHILD, str(out_dir / "job.json")], check=True)
    return json.loads((out_dir / "result.json").read_text())


def training_memory(
    work_dir: Path, config: dict[str, Any], model: str, method: str, precision: str | None, adapter: str = "lora"
) -> dict:
    """One row: ``method``'s training job at ``precision`` (None: the config's) in a fresh process, with its
    steps, seconds (model loading included) and peak RSS; ``adapter`` ``full`` trains every weight instead of LoRA
    (``adapter: full``), so that the two can be compared on the same data."""
    needs_pairs = get_method(method).needs_pairs
    ensure(work_dir, TRAINING_INPUTS if needs_pairs else INFERENCE_INPUTS)
    results = (work_dir / "results").resolve()
    cfg = method_cfg(config, model, method, None, precision)
    if adapter == "full":
        cfg = {**{k: v for k, v in cfg.items() if k != "lora"}, "adapter": "full"}
    result = in_fresh_process({
        "cfg": cfg,
        "manifest": str(results / "models" / model / "model.json"),
        "qa": str(results / "data" / "qa.parquet"),
        "pairs": str(results / "perturb" / "dpo_pairs.parquet") if needs_pairs else None,
        "style": prompt_style(config, model),
        "out_dir": str((work_dir / "training_memory" / f"{method}_{adapter}").resolve()),
    })  # fmt: skip
    print(f"{method} ({adapter}) precision={cfg['precision']} ({result['dtype']}): {result['steps']} steps, "
          f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)  # fmt: skip
    return {"benchmark": f"training memory: {method} ({adapter}), precision {cfg['precision']}, one fresh process",
            "seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"], "dtype": result["dtype"],
            "detail_text": f"{result['steps']} steps"}  # fmt: skip
