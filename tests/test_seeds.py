"""Seeds: an unlearn: entry trained once per seed, as independent DAG chains, pooled under the entry's name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, planned_jobs, snakemake, tiny_config

from unlearning.config.settings import expand_unlearn, pooled_name, seed_groups, sweep_of, unlearn_settings
from unlearning.core.parquet_io import read_parquet


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_top_level_seeds_train_every_entry_once_per_seed() -> None:
    config = default_config() | {"seeds": [42, 43, 44]}
    runs = list(expand_unlearn(config))
    assert runs == [f"{e}_seed{s}" for e in ("dpo", "npo") for s in (42, 43, 44)]
    assert seed_groups(config) == {e: [f"{e}_seed{s}" for s in (42, 43, 44)] for e in ("dpo", "npo")}
    assert pooled_name(config)["npo_seed43"] == "npo"
    settings = unlearn_settings(config, "smollm2", "npo_seed43")
    assert settings["seed"] == 43 and settings["retain_weight"] == 3.0 and settings["settings"] == {"beta": 0.1}
    # everything but the seed is the entry's own: the three chains differ only there
    others = {k: v for k, v in settings.items() if k != "seed"}
    assert others == {k: v for k, v in unlearn_settings(config, "smollm2", "npo_seed44").items() if k != "seed"}


def test_an_entrys_own_seeds_win_and_grids_are_seeded_per_point() -> None:
    config = default_config() | {"seeds": [1, 2]}
    config["unlearn"]["npo"]["seeds"] = [7]
    config["unlearn"]["sweep"] = {"method": "npo", "grid": {"learning_rate": [1e-4, 3e-4]}}
    runs = list(expand_unlearn(config))
    assert runs == ["dpo_seed1", "dpo_seed2", "npo_seed7", "sweep_lr0.0001_seed1", "sweep_lr0.0001_seed2",
                    "sweep_lr0.0003_seed1", "sweep_lr0.0003_seed2"]  # fmt: skip
    # a sweep picks on the pooled grid points
    assert sweep_of(config)["sweep_lr0.0003"] == "sweep" and "sweep_lr0.0003_seed1" not in sweep_of(config)


def test_without_seeds_nothing_is_renamed() -> None:
    config = default_config()
    assert list(expand_unlearn(config)) == ["dpo", "npo"] and seed_groups(config) == {}


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([], r"seeds: expected a non-empty list of integer seeds"),
        ([42, 42], r"seeds: the seed\(s\) 42 are repeated"),
        ([42, "43"], r"seeds: seeds must be integers, got '43'"),
        ([42, 1.5], r"seeds: seeds must be integers, got 1.5"),
        (42, r"seeds: expected a non-empty list"),
        ([-1], r"seeds: seeds must lie in 0\.\.4294967295"),
        ([2**32], r"seeds: seeds must lie in 0\.\.4294967295"),
    ],
)
def test_a_bad_seed_list_is_an_error(seeds: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_unlearn(default_config() | {"seeds": seeds})
    config = default_config()
    config["unlearn"]["npo"]["seeds"] = seeds
    with pytest.raises(ValueError, match="unlearn.npo." + message):
        expand_unlearn(config)


def test_seeds_example_is_the_default_with_seeds() -> None:
    default = default_config()
    seeded = yaml.safe_load((ROOT / "configs" / "seeds.yaml").read_text())
    assert seeded.pop("seeds") == [42, 43, 44]
    assert seeded == default, "configs/seeds.yaml differs from config.yaml beyond seeds:"


def test_seeds_plan_independent_chains_and_bad_seeds_stop_before_any_job(tmp_path: Path) -> None:
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(ROOT / "configs" / "seeds.yaml"))
    jobs = planned_jobs(out.stdout)
    assert jobs["unlearn"] == 6 and jobs["generate"] == 7 and jobs["score"] == 7 and jobs["summarize"] == 1, jobs
    bad = tmp_path / "bad.yaml"
    config = copy.deepcopy(default_config()) | {"seeds": [42, 42]}
    bad.write_text(yaml.safe_dump(config))
    failed = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad), check=False)
    assert failed.returncode != 0
    assert "config: seeds: [42, 42] has non-unique elements" in failed.stdout + failed.stderr


@pytest.mark.slow
def test_a_seeded_entry_runs_end_to_end_and_is_pooled(tmp_path: Path, tiny_model_dir: Path) -> None:
    """NPO with two seeds on the tiny model: two independent trainings, each scored, then pooled in the summary
    (the mean of the two runs' figures, an interval over both) and shown once in the report, with a per-seed
    table."""
    config = tiny_config(tiny_model_dir)
    config["unlearn"] = {"npo": {"method": "npo", "beta": 0.1, "seeds": [1, 2]}}
    (tmp_path / "seeds.yaml").write_text(yaml.safe_dump(config))
    snakemake("--cores", "2", "--directory", str(tmp_path), "--configfile", str(tmp_path / "seeds.yaml"))
    results = tmp_path / "results"
    adapters = [results / "unlearn" / "tiny" / f"npo_seed{s}" / "adapter" / "adapter_model.safetensors" for s in (1, 2)]
    assert adapters[0].read_bytes() != adapters[1].read_bytes(), "the two seeds train different adapters"
    summary = read_parquet(results / "score" / "summary.parquet")
    assert {"base", "npo_seed1", "npo_seed2", "npo"} <= set(summary["variant"])
    rows = summary[(summary["split"] == "forget_test") & (summary["subset"] == "all") & (summary["kind"] == "all")]
    recall = rows[rows["metric"] == "rougeL_recall"].set_index("variant")["value"]
    assert recall["npo"] == pytest.approx((recall["npo_seed1"] + recall["npo_seed2"]) / 2)
    drop = rows[rows["metric"] == "rougeL_recall_drop"].set_index("variant")
    assert drop.loc["npo", "ci_low"] <= min(drop.loc["npo_seed1", "value"], drop.loc["npo_seed2", "value"])
    assert drop.loc["npo", "ci_high"] >= max(drop.loc["npo_seed1", "value"], drop.loc["npo_seed2", "value"])
    md = (results / "report" / "report.md").read_text()
    assert "### Per seed" in md and "| npo_seed2 |" in md.split("### Per seed")[1]
    overview = md.split("## Model:")[0]
    assert "| npo |" in overview and "npo_seed1" not in overview
