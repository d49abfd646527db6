"""Sweeps: an unlearn: entry's grid expands into one ordinary entry per combination, each its own DAG chain."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, planned_jobs, planned_outputs, snakemake

from unlearning.config.settings import expand_unlearn, sweep_of, unlearn_entries, unlearn_settings

GRID = {"method": "npo", "beta": 0.1, "grid": {"learning_rate": [1e-4, 3e-4], "lora": {"r": [8, 16]}}}


def config_with_grid() -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["unlearn"]["sweep"] = copy.deepcopy(GRID)
    return config


def test_a_grid_expands_into_one_named_entry_per_combination() -> None:
    config = config_with_grid()
    names = [n for n in unlearn_entries(config) if n.startswith("sweep")]
    assert names == ["sweep_lr0.0001_r8", "sweep_lr0.0001_r16", "sweep_lr0.0003_r8", "sweep_lr0.0003_r16"]
    point = unlearn_settings(config, "smollm2", "sweep_lr0.0003_r16")
    assert point["learning_rate"] == 3e-4 and point["lora"]["r"] == 16 and point["settings"] == {"beta": 0.1}
    assert point["lora"]["alpha"] == config["train"]["lora"]["alpha"], "the rest of lora: comes from train:"
    assert sweep_of(config)["sweep_lr0.0001_r8"] == "sweep" and sweep_of(config)["dpo"] == "dpo"


def test_changing_one_grid_value_changes_only_that_points_settings() -> None:
    """Snakemake reruns a job when its params change, so unchanged points keep their chains."""
    before = config_with_grid()
    after = copy.deepcopy(before)
    after["unlearn"]["sweep"]["grid"]["learning_rate"] = [1e-4, 5e-4]
    kept = set(unlearn_entries(before)) & set(unlearn_entries(after))
    assert kept == {"dpo", "npo", "sweep_lr0.0001_r8", "sweep_lr0.0001_r16"}
    for name in kept:
        assert unlearn_settings(before, "smollm2", name) == unlearn_settings(after, "smollm2", name)
    assert set(unlearn_entries(after)) - kept == {"sweep_lr0.0005_r8", "sweep_lr0.0005_r16"}


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"learning_rate": 1e-4}, r"unlearn\.sweep: grid key learning_rate must be a non-empty list"),
        ({"lora": {"r": []}}, r"unlearn\.sweep: grid key lora\.r must be a non-empty list"),
        ({"learning_rate": [1e-4, 1.0e-4]}, r"unlearn\.sweep: grid key learning_rate repeats the value\(s\) 0\.0001"),
    ],
)
def test_a_malformed_grid_names_the_key(grid: dict, message: str) -> None:
    config = config_with_grid()
    config["unlearn"]["sweep"]["grid"] = grid
    with pytest.raises(ValueError, match=message):
        expand_unlearn(config)


def test_colliding_grid_names_are_an_error() -> None:
    config = config_with_grid()
    config["unlearn"]["sweep_lr0.0001_r8"] = {"method": "npo"}
    with pytest.raises(ValueError, match="'sweep_lr0.0001_r8' collides"):
        expand_unlearn(config)


def test_dry_run_plans_one_chain_per_grid_point_and_checks_each(tmp_path: Path) -> None:
    config = config_with_grid()
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "grid.yaml"))
    outputs = planned_outputs(out.stdout)
    for name in ("sweep_lr0.0001_r8", "sweep_lr0.0003_r16"):
        assert {f"results/unlearn/smollm2/{name}/log.parquet", f"results/score/smollm2/{name}.parquet"} <= outputs
    config["unlearn"]["sweep"]["grid"]["beta"] = [0.1, "strong"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    bad = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert bad.returncode != 0
    message = "unlearn.sweep_betastrong_lr0.0001_r8.beta: 'strong' is not a valid float for method 'npo'"
    assert message in bad.stdout + bad.stderr
    assert "(a point of unlearn.sweep.grid)" in bad.stdout + bad.stderr
    # a train: key of the wrong type inside a grid: the schema's message, with the grid it came from
    config["unlearn"]["sweep"]["grid"] = {"retain_weight": ["3", 10.0]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    bad = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert bad.returncode != 0
    message = "unlearn.sweep_rw3.retain_weight (a point of unlearn.sweep.grid): '3' is not of type 'number'"
    assert message in bad.stdout + bad.stderr


def test_sweep_example_is_the_default_with_a_grid(tmp_path: Path) -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    sweep = yaml.safe_load((ROOT / "configs" / "sweep_example.yaml").read_text())
    assert len([e for e in unlearn_entries(sweep)]) == 6
    sweep.pop("unlearn"), default.pop("unlearn"), sweep.pop("select")
    assert sweep == default, "configs/sweep_example.yaml differs from config.yaml beyond unlearn:"


def test_frontier_config_is_the_default_with_its_levers() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    frontier = yaml.safe_load((ROOT / "configs" / "frontier.yaml").read_text())
    entries = unlearn_entries(frontier)
    for name in default["unlearn"]:  # the default's entries, so that both runs share their chains
        assert unlearn_settings(frontier, "smollm2", name) == unlearn_settings(default, "smollm2", name)
    adapters = {unlearn_settings(frontier, "smollm2", e)["adapter"] for e in entries}
    inits = {unlearn_settings(frontier, "smollm2", e).get("lora", {}).get("init") for e in entries}
    assert adapters == {"lora", "full"} and {"default", "fila"} <= inits
    assert frontier.pop("attacks") == {}, "the frontier compares the variants as trained (attacks.yaml attacks them)"
    frontier.pop("unlearn"), default.pop("unlearn"), frontier.pop("select"), default.pop("attacks")
    assert frontier == default, "configs/frontier.yaml differs from config.yaml beyond unlearn:, select: and attacks:"


def test_a_run_without_dpo_family_entries_builds_no_preference_pairs(tmp_path: Path) -> None:
    """The wrong answers still feed scoring (truth ratio), but no chain waits on DPO pairs."""
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(ROOT / "configs" / "sweep_example.yaml"))
    jobs = planned_jobs(out.stdout)
    assert jobs["unlearn"] == 6 and "build_pairs" not in jobs, jobs
