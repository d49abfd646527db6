"""Derive per-model settings from the validated config.

The config has one ``train:`` block for all models and optional per-model overrides; jobs must see exactly the
merged slice they depend on, so that Snakemake reruns a model's training only when its own settings change.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .prompting import DEFAULT_FEW_SHOT, PromptStyle


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated key by key (recursively for mappings) with ``override``."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def train_settings(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The training settings of one model: top-level ``train`` + the model's overrides, with a seed."""
    merged = deep_merge(config["train"], config["models"][model].get("train"))
    merged.setdefault("seed", config["seed"])
    return merged


IMPORT_KEYS = ("path", "revision", "gguf", "trust_remote_code", "chat_template")


def import_settings(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The slice of a model entry that import_model depends on (not its resources, training or few-shot settings,
    whose changes must not redo a GGUF conversion)."""
    spec = config["models"][model]
    return {key: copy.deepcopy(spec[key]) for key in IMPORT_KEYS if key in spec}


def prompt_style(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """How questions are put to ``model`` (as a plain dict, so it can be a Snakemake param)."""
    prompt = config.get("prompt", {})
    spec = config["models"][model]
    chat_template = bool(spec.get("chat_template", True))
    return vars(
        PromptStyle(
            instruction=prompt.get("instruction"),
            system=prompt.get("system"),
            chat_template=chat_template,
            # examples only ever precede plain prompts; 0 otherwise so the param does not change with them
            few_shot=0 if chat_template else int(spec.get("few_shot", DEFAULT_FEW_SHOT)),
        )
    )


def perturb_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The perturbation stage's own settings: refusals only shape the pairs, so they are left out here."""
    return {k: v for k, v in config["perturb"].items() if k != "refusals"}
