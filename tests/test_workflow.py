"""The Snakemake DAG: lint, dry runs of both configs, config validation, a real end-to-end run on a tiny model,
what reruns after a settings change, and Snakemake's own report."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from unlearning.core.file_modes import umask_mode
from unlearning.core.parquet_io import null_typed_columns, read_metadata, read_parquet

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
METHODS = ("dpo", "npo")  # the embedded default's unlearn: entries


def snakemake(*args: str, cwd: Path = ROOT, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    jobs = {}
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def test_lint_passes() -> None:
    out = snakemake("--lint")
    assert "Congratulations" in out.stdout + out.stderr


@pytest.mark.parametrize("configfile", [None, "configs/paper.yaml"])
def test_dry_run_plans_the_whole_dag(configfile: str | None, tmp_path: Path) -> None:
    args = ["-n", "--directory", str(tmp_path)]
    if configfile:
        args += ["--configfile", str(ROOT / configfile)]
    out = snakemake(*args, cwd=ROOT)
    jobs = planned_jobs(out.stdout)
    n_models, n_methods = (3, 4) if configfile else (1, 2)
    assert jobs["unlearn"] == n_models * n_methods and jobs["import_model"] == n_models
    assert jobs["generate"] == jobs["score"] == n_models * (1 + n_methods)
    assert jobs["known_facts"] == n_models  # the base model's known facts, once per model
    assert {"prepare_data", "perturb", "build_pairs", "summarize", "report", "all"} <= set(jobs)


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="the SLURM executor needs the SLURM client tools")
def test_slurm_profile_plans_the_study_with_its_resources(tmp_path: Path) -> None:
    out = snakemake(
        "-n", "--directory", str(tmp_path), "--workflow-profile", str(ROOT / "profiles" / "slurm"),
        "--configfile", str(ROOT / "configs" / "paper.yaml"),
    )  # fmt: skip
    plan = out.stdout + out.stderr
    assert planned_jobs(out.stdout)["unlearn"] == 12
    blocks = re.findall(r"rule unlearn:.*?resources: ([^\n]*)", plan, flags=re.S)
    assert len(blocks) == 12
    for block in blocks:
        assert "slurm_partition=gpu" in block and "gpu=1" in block and re.search(r"runtime=(360|480)", block)


# not localrules
SUBMITTED_RULES = (
    "perturb", "describe", "unlearn", "generate", "score", "corpus_score", "export", "attack", "merge_adapter"
)  # fmt: skip
DEFAULT_SUBMITTED = {"perturb", "unlearn", "generate", "score", "export", "attack"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), DEFAULT_SUBMITTED),
        (("--default-resources", "mem_mb=1234", "runtime=5"), DEFAULT_SUBMITTED),
        # the merged model needs its adapter (unlearn npo: no DPO pairs, so no perturb); `all` never needs a merge
        (("results/unlearn/smollm2/npo/merged",), {"unlearn", "merge_adapter"}),
        (("--configfile", str(ROOT / "configs" / "names_only.yaml")), {"describe", "unlearn", "corpus_score"}),
    ],
    ids=["profile alone", "--default-resources on the command line", "merge_adapter", "names only"],
)
def test_slurm_profile_keeps_partition_and_account_of_every_submitted_job(
    extra: tuple[str, ...], expected: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snakemake #3429: `--default-resources` on the command line replaces the profile's whole `default-resources`
    block. When the profile kept the account there, the command above dropped it from every job, silently. Every
    job the profile submits (everything but the localrules) must keep its partition and account."""
    monkeypatch.setenv("UNLEARNING_SLURM_ACCOUNT", "acct_x")
    monkeypatch.setenv("UNLEARNING_SLURM_GPU_PARTITION", "gpu_x")
    monkeypatch.setenv("UNLEARNING_SLURM_PARTITION", "cpu_x")
    profile = ("--workflow-profile", str(ROOT / "profiles" / "slurm"))
    out = snakemake("-n", "--directory", str(tmp_path), *profile, *extra)
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: ([^\n]*)", out.stdout, flags=re.M)
    submitted = [(rule, res) for rule, res in jobs if rule in SUBMITTED_RULES]
    assert {rule for rule, _ in submitted} == expected
    for rule, resources in submitted:
        partition = "cpu_x" if rule in ("merge_adapter", "export") else "gpu_x"
        assert f"slurm_partition={partition}" in resources and "slurm_account=acct_x" in resources, (rule, resources)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["train"].update(learning_rate="high"), r"'high' is not of type 'number'"),
        (
            lambda c: c["train"].update(dpo={"beta": 0.1}),
            r"config: train: unknown key 'dpo' \(allowed: adapter, batch_size, ",
        ),
        (
            lambda c: c["train"].update(learning_rte=1e-4),
            r"config: train: unknown key 'learning_rte' .*; did you mean 'learning_rate' for 'learning_rte'\?",
        ),
        (lambda c: c["train"]["lora"].update(rr=4), r"config: train\.lora: unknown key 'rr' .*did you mean 'r' for"),
        (
            lambda c: c["train"]["lora"].update(target_modules="attn"),
            r"config: train\.lora\.target_modules: 'attn' is not one of \['all-linear', 'attention', 'mlp'\]",
        ),
        (lambda c: c.update(scroe={}), r"config: top level: unknown key 'scroe' .*did you mean 'score' for 'scroe'\?"),
        (
            lambda c: c["unlearn"].update(npo={"method": "npo", "gamma": 2}),
            r"unlearn\.npo: unknown setting\(s\) gamma for method 'npo'",
        ),
        (
            lambda c: c["unlearn"].update(x={"method": "forgetall"}),
            r"unlearn\.x: unknown unlearning method 'forgetall'",
        ),
        (
            lambda c: c["unlearn"].update(base={"method": "npo"}),
            r"unlearn\.base: `base` is reserved for the model without an adapter",
        ),
        (lambda c: c["generate"].update(max_tokens=4), r"config: generate: unknown key 'max_tokens' \(allowed: "),
        (lambda c: c.pop("models"), r"'models' is a required property"),
        (lambda c: c["perturb"]["refusals"].update(mode="sometimes"), r"'sometimes' is not one of"),
        (
            lambda c: c["unlearn"].update(full={"method": "npo", "adapter": "full", "lora": {"r": 4}}),
            r"unlearn\.full: adapter: full trains every weight, so the entry's lora\.r cannot apply",
        ),
        (lambda c: c["train"]["lora"].update(init="pissa"), r"'pissa' is not one of \['default', 'fila'\]"),
        (lambda c: c["train"].update(adapter="qlora"), r"'qlora' is not one of \['lora', 'full'\]"),
        (
            lambda c: c["data"]["persons"].update(forget={"names": []}),
            r"data\.persons\.forget\.names: the list of names is empty",
        ),
        (
            lambda c: (c["data"]["persons"].update(forget={"names": ["Ada Quill"]}), c.update(attacks={})),
            r"unlearn\.dpo: data\.persons\.forget is given by names only, so there are no QA pairs to forget: set "
            r"forget_data: corpus",
        ),
        (
            lambda c: (
                c["data"]["persons"].update(forget={"names": ["Ada Quill"]}),
                c["train"].update(forget_data="corpus"),
            ),
            r"attacks: every attack is scored on the forget persons' held-out QA facts, and data\.persons\.forget "
            r"is given by names only",
        ),
        (
            lambda c: c["data"]["persons"].update(general={"names": ["Ada Quill"]}),
            r"unlearn\.dpo: retain_split names the general set, given by names only, so the retain term has no QA",
        ),
        # model names become output folders: one that could climb out of results/ is refused
        (lambda c: c["models"].update({"../escape": {"path": "x"}}), r"'\.\./escape' does not match"),
    ],
)
def test_bad_config_fails_before_any_job(change, message: str, tmp_path: Path) -> None:  # noqa: ANN001
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    change(config)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert out.returncode != 0
    assert re.search(message, out.stdout + out.stderr), out.stderr[-2000:]
    assert "$defs" not in out.stdout + out.stderr, "the error names the key; it does not print the schema"
    assert not (tmp_path / "results").exists()


def tiny_config(model_dir: Path) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for role in ("forget", "retain", "general"):
        spec = config["data"]["persons"][role]
        spec["path"] = str(ROOT / spec["path"])
    config["data"]["truthfulqa"]["path"] = str(ROOT / config["data"]["truthfulqa"]["path"])
    config["data"]["truthfulqa"]["limit"] = 8
    config["models"] = {"tiny": {"path": str(model_dir), "resources": {"mem_mb": 2000, "runtime": 10, "threads": 1}}}
    config["perturb"].update(model="tiny", k=2, max_rounds=1, max_new_tokens=8, max_failed_fraction=1.0)
    config["train"].update(epochs=2, batch_size=8, learning_rate=5e-3, max_length=96, max_prompt_length=64)
    config["train"]["retain_weight"] = 0.2  # the retain term runs in the DAG, weakly enough for a clear signal
    config["generate"].update(max_new_tokens=8)
    config["attacks"] = {}  # the tiny model is no GGUF; tests/test_attacks.py runs the attacks on a GGUF one
    return for_tiny_model(config)


def for_tiny_model(config: dict) -> dict:
    """The unlearn: entries without the learning rates and decoder layers tuned for SmolLM2 (30 layers): the tiny
    model has 2, and learns at train:'s 5e-3."""
    for spec in config["unlearn"].values():
        spec.pop("learning_rate", None)
        if "lora" in spec:
            spec["lora"].pop("layers", None)
            if not spec["lora"]:
                del spec["lora"]
    return config


@pytest.fixture(scope="module")
def e2e(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("e2e")
    config = tiny_config(tiny_model_dir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake("--cores", "2", "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"))
    return workdir, config


@pytest.mark.slow
def test_end_to_end_run_writes_every_artifact(e2e: tuple[Path, dict]) -> None:
    workdir, _ = e2e
    results = workdir / "results"
    mode = umask_mode()  # results are readable as the umask allows (mkstemp and safetensors files start as 0600)
    assert [p for p in results.rglob("*") if p.is_file() and p.stat().st_mode & 0o777 != mode] == []
    qa = read_parquet(results / "data" / "qa.parquet")
    assert set(qa["split"]) == {
        "forget_train", "forget_test", "retain_train", "retain_test", "general_train", "general_test"
    }  # fmt: skip
    pairs = read_parquet(
        results / "perturb" / "dpo_pairs.parquet", ["prompt", "chosen", "rejected", "kind", "source_id"]
    )
    assert len(pairs) > 0
    for method in METHODS:
        log = read_parquet(results / "unlearn" / "tiny" / method / "log.parquet")
        assert list(log.columns[:8]) == ["step", "epoch", "loss", "forget_loss", "retain_loss", "learning_rate",
                                         "num_tokens", "seconds"]  # fmt: skip
        # the last epoch's mean against the first step: one batch's loss moves with the batch's questions
        last_epoch = log.loc[log["epoch"] > log["epoch"].max() - 1, "forget_loss"]
        assert last_epoch.mean() < log["forget_loss"].iloc[0], method
        adapter = results / "unlearn" / "tiny" / method / "adapter"
        assert (adapter / "adapter_model.safetensors").is_file() and not list(adapter.glob("model*"))
    base = read_parquet(results / "generate" / "tiny" / "base.parquet")
    for variant in ("base", *METHODS):
        gens = read_parquet(results / "generate" / "tiny" / f"{variant}.parquet")
        assert len(gens) == len(qa) + 8
        scores = read_parquet(results / "score" / "tiny" / f"{variant}.parquet")
        assert scores["rougeL_recall"].between(0, 1).all()
        if variant != "base":
            assert not base["generation"].equals(gens["generation"]), f"the {variant} adapter changes the answers"
    summary = read_parquet(
        results / "score" / "summary.parquet", ["model", "variant", "split", "subset", "metric", "value"]
    )
    assert {"base", *METHODS} <= set(summary["variant"]) and set(summary["subset"]) == {"all", "known"}
    known = read_parquet(results / "known" / "tiny.parquet", ["id", "split", "known", "base_rougeL_recall"])
    assert len(known) == len(qa) + 8
    meta = read_metadata(results / "score" / "summary.parquet")
    assert meta["stage"] == "summarize" and "torch" in meta["versions"]
    # every change against base has an interval, or a note saying why it has none
    full = read_parquet(results / "score" / "summary.parquet", ["metric", "variant", "ci_low", "ci_high", "ci_note"])
    changes = full[full["metric"].str.endswith(("_drop", "_change")) | (full["metric"] == "tradeoff_score")]
    assert len(changes) and set(changes["variant"]) == set(METHODS)
    has_interval = changes["ci_low"].notna() & (changes["ci_low"] <= changes["ci_high"])
    assert (has_interval | (changes["ci_note"] != "")).all() and has_interval.mean() > 0.9
    html = (results / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and (results / "report" / "report.md").is_file()
    assert "judgement" in html and "score [95% interval]" in html
    assert list((results / "benchmarks").rglob("*.tsv")), "heavy jobs write benchmark files"
    # every table keeps its contract's Arrow types, also one with no rows (operating_points without a sweep): a
    # null-typed column would clash with the same file of another run when a user unions them (Polars, DuckDB)
    written = sorted(results.rglob("*.parquet"))
    assert results / "score" / "operating_points.parquet" in written and len(written) >= 10
    for path in written:
        untyped = null_typed_columns(pq.read_schema(path))
        assert untyped == [], f"{path.relative_to(results)}: column(s) {untyped} of Arrow type null"


def planned_outputs(output: str) -> set[str]:
    """Every output path of a dry run's planned jobs."""
    return {p.strip() for line in re.findall(r"^\s+output: (.*)$", output, flags=re.M) for p in line.split(",")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "rerun", "kept"),
    [
        (  # the perturber feeds the DPO pairs: only the DPO chain reruns, NPO's and the base's stay
            lambda c: c["perturb"].update(temperature=0.7),
            {"results/perturb/dpo_pairs.parquet", "results/unlearn/tiny/dpo/log.parquet",
             "results/score/tiny/dpo.parquet", "results/score/summary.parquet"},
            {"results/data/qa.parquet", "results/unlearn/tiny/npo/log.parquet", "results/generate/tiny/npo.parquet",
             "results/generate/tiny/base.parquet"},
        ),
        (  # one entry's settings: that chain only
            lambda c: c["unlearn"]["npo"].update(beta=0.2),
            {"results/unlearn/tiny/npo/log.parquet", "results/generate/tiny/npo.parquet",
             "results/score/tiny/npo.parquet", "results/score/summary.parquet"},
            {"results/perturb/perturbations.parquet", "results/unlearn/tiny/dpo/log.parquet",
             "results/generate/tiny/dpo.parquet", "results/generate/tiny/base.parquet"},
        ),
        (  # a shared training setting: every method's chain, never the base's
            lambda c: c["train"].update(learning_rate=4e-3),
            {"results/unlearn/tiny/npo/log.parquet", "results/unlearn/tiny/dpo/log.parquet"},
            {"results/perturb/dpo_pairs.parquet", "results/generate/tiny/base.parquet"},
        ),
        (
            lambda c: c["score"].update(batch_size=3),
            {"results/score/tiny/base.parquet", "results/score/tiny/npo.parquet", "results/score/summary.parquet"},
            {"results/perturb/perturbations.parquet", "results/generate/tiny/base.parquet",
             "results/unlearn/tiny/dpo/log.parquet"},
        ),
        (
            lambda c: c["score"].update(known_threshold=0.9),
            {"results/known/tiny.parquet", "results/score/summary.parquet"},
            {"results/score/tiny/base.parquet", "results/generate/tiny/dpo.parquet",
             "results/unlearn/tiny/npo/log.parquet"},
        ),
    ],
)  # fmt: skip
def test_a_settings_change_reruns_only_what_depends_on_it(e2e, change, rerun: set, kept: set) -> None:  # noqa: ANN001
    workdir, config = e2e
    changed = copy.deepcopy(config)
    change(changed)
    (workdir / "changed.yaml").write_text(yaml.safe_dump(changed))
    out = snakemake("-n", "--directory", str(workdir), "--configfile", str(workdir / "changed.yaml"))
    outputs = planned_outputs(out.stdout)
    assert rerun <= outputs, sorted(outputs)
    assert not (kept & outputs), sorted(kept & outputs)


def reordered(value):  # noqa: ANN001, ANN201
    """The same config with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    return value


@pytest.mark.slow
def test_reordered_config_keys_rerun_nothing(e2e: tuple[Path, dict]) -> None:
    workdir, config = e2e
    (workdir / "reordered.yaml").write_text(yaml.safe_dump(reordered(config), sort_keys=False))
    out = snakemake("-n", "--directory", str(workdir), "--configfile", str(workdir / "reordered.yaml"))
    assert "Nothing to be done" in out.stdout + out.stderr, planned_jobs(out.stdout)


@pytest.mark.slow
def test_noop_rerun_and_snakemake_report(e2e: tuple[Path, dict]) -> None:
    workdir, _ = e2e
    config = ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    out = snakemake("-n", *config)
    assert "Nothing to be done" in out.stdout + out.stderr
    snakemake(*config, "--report", str(workdir / "snakemake_report.html"))
    assert (workdir / "snakemake_report.html").stat().st_size > 10_000


def test_data_error_leaves_no_partial_output(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = tiny_config(tiny_model_dir)
    bad = tmp_path / "forget.csv"
    pd.DataFrame({"title": ["Ada", "Ada"], "question": ["Who?", "Who?"], "answer": ["A.", "B."]}).to_csv(
        bad, index=False
    )
    config["data"]["persons"]["forget"]["path"] = str(bad)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(
        "results/data/qa.parquet",  # before --configfile, which takes several values
        "--cores",
        "1",
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "c.yaml"),
        check=False,
    )
    assert out.returncode != 0
    assert "forget.csv: data row 2 repeats the question of data row 1" in out.stdout + out.stderr
    assert not list((tmp_path / "results").rglob("*.parquet")) if (tmp_path / "results").exists() else True


@pytest.mark.slow
def test_truncated_artifact_is_detected_and_its_stage_reruns(e2e: tuple[Path, dict]) -> None:
    workdir, _ = e2e
    target = workdir / "results" / "score" / "tiny" / "base.parquet"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    config = ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    out = snakemake("--cores", "2", *config)
    assert (
        "truncated artifact results/score/tiny/base.parquet: removed, its stage will rerun" in out.stdout + out.stderr
    )
    reran = set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", out.stdout + out.stderr))
    # the checkpoint removes it (only a real run does); the re-planned DAG remakes it and what follows, in one run
    expected = {"remove_truncated_artifacts", "score", "known_facts", "summarize", "select_operating_points", "report"}
    assert reran == {*expected, "all"}, reran
    assert len(read_parquet(target)) > 0


@pytest.mark.slow
def test_killed_generation_reruns_only_that_job(e2e: tuple[Path, dict]) -> None:
    workdir, _ = e2e
    config = ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    # the state of a run that has reached the base generation: it and everything after it are still to make
    for name in (
        "generate/tiny/base.parquet",
        "score/tiny/base.parquet",
        "score/summary.parquet",
        "report/report.html",
    ):
        (workdir / "results" / name).unlink()
    log = workdir / "logs" / "generate" / "tiny" / "base.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--cores", "1", *config]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not log.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shutil.rmtree(workdir / ".snakemake" / "locks", ignore_errors=True)  # a killed run leaves its lock
    jobs = planned_jobs(snakemake("-n", *config).stdout)
    expected = ("generate", "score", "known_facts", "summarize", "select_operating_points", "report", "all")
    assert jobs == dict.fromkeys(expected, 1), jobs
    snakemake("--cores", "2", *config)
    assert len(read_parquet(workdir / "results" / "generate" / "tiny" / "base.parquet")) > 0


@pytest.mark.slow
def test_same_config_and_seed_reproduce_the_run(e2e: tuple[Path, dict], tmp_path: Path) -> None:
    """A second run from scratch writes byte-identical data, perturbation and pair files and the same answers."""
    first, config = e2e
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/generate/tiny/{variant}.parquet" for variant in ("base", *METHODS)]
    snakemake(*targets, "--cores", "2", "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"))
    for name in ("data/qa.parquet", "data/truthfulqa.parquet", "perturb/perturbations.parquet",
                 "perturb/dpo_pairs.parquet"):  # fmt: skip
        assert (first / "results" / name).read_bytes() == (tmp_path / "results" / name).read_bytes(), name
    for variant in ("base", *METHODS):
        a = read_parquet(first / "results" / "generate" / "tiny" / f"{variant}.parquet")
        b = read_parquet(tmp_path / "results" / "generate" / "tiny" / f"{variant}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_all_methods_config_is_the_default_with_every_method() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    every = yaml.safe_load((ROOT / "configs" / "all_methods.yaml").read_text())
    from unlearning.training.methods import METHODS

    unlearning = {name for name, cls in METHODS.items() if cls.unlearns}  # not grad_descent, which teaches
    assert {entry["method"] for entry in every.pop("unlearn").values()} == unlearning
    default.pop("unlearn")
    assert every == default, "configs/all_methods.yaml differs from config.yaml beyond unlearn:"


def tiny_model_that_knows(config: dict, tiny_model_dir: Path, workdir: Path) -> Path:
    """The tiny model taught every QA pair of ``config``'s data (its qa.parquet, made by Snakemake in ``workdir``)
    in ``config``'s prompt: only a model that knows the facts can show forgetting."""
    from conftest import teach_facts

    from unlearning.inference.prompting import PromptStyle

    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake("results/data/qa.parquet", "--cores", "2", "--directory", str(workdir), "--configfile",
              str(workdir / "config.yaml"))  # fmt: skip
    qa = read_parquet(workdir / "results" / "data" / "qa.parquet")
    style = PromptStyle(instruction=config["prompt"]["instruction"])
    return teach_facts(tiny_model_dir, list(qa["question"]), list(qa["answer"]), workdir / "knowing", style, 200)


@pytest.mark.slow
def test_every_method_forgets_in_the_dag(tiny_model_dir: Path, tmp_path: Path) -> None:
    """configs/all_methods.yaml's methods on a tiny model that knows the sample's facts: each (model, method) chain
    runs through Snakemake and lowers the probability of the forget_train answers below the base model's."""
    config = tiny_config(tiny_model_dir)
    config["unlearn"] = yaml.safe_load((ROOT / "configs" / "all_methods.yaml").read_text())["unlearn"]
    for_tiny_model(config)
    config["perturb"]["refusals"] = {"mode": "mix"}  # a model that knows the answers may write only the truth
    run = ["--cores", "2", "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]
    config["models"]["tiny"]["path"] = str(tiny_model_that_knows(config, tiny_model_dir, tmp_path))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    methods = list(config["unlearn"])
    snakemake(*[f"results/score/tiny/{v}.parquet" for v in ("base", *methods)], *run)
    scores = {v: read_parquet(tmp_path / "results" / "score" / "tiny" / f"{v}.parquet") for v in ("base", *methods)}
    forget = {v: s.loc[s["split"] == "forget_train", "answer_prob"].mean() for v, s in scores.items()}
    assert forget["base"] > 0.6, f"the taught model knows the forget answers: {forget}"
    for method in methods:
        assert forget[method] < forget["base"] - 0.05, (method, forget)
        adapter = tmp_path / "results" / "unlearn" / "tiny" / method / "adapter"
        if config["unlearn"][method].get("adapter") == "full":  # the whole model, where an adapter would go
            assert (adapter / "model.safetensors").is_file() and not list(adapter.glob("adapter*"))
        else:
            assert (adapter / "adapter_model.safetensors").is_file() and not list(adapter.glob("model*"))
