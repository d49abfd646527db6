"""Derive per-job settings from the validated config.

The config has one ``train:`` block for all models and methods, optional per-model overrides
(``models.<m>.train``) and the ``unlearn:`` entries, each naming a registered method with overrides of its own;
jobs must see exactly the merged slice they depend on, so that Snakemake reruns one (model, entry) chain only when
its own settings change.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .prompting import PromptStyle


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated key by key (recursively for mappings) with ``override``."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# the keys of train: (schemas/config.schema.yaml, $defs/train_settings), which an unlearn: entry may override too
TRAIN_KEYS = frozenset(
    {
        "lora", "learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "max_prompt_length",
        "retain_weight", "retain_kind", "retain_split", "precision", "gradient_checkpointing", "save_steps", "seed",
    }
)  # fmt: skip
ENTRY_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # an unlearn: entry name becomes a folder and a {variant} wildcard


def unlearn_entries(config: Mapping[str, Any]) -> list[str]:
    """The ``unlearn:`` entry names in the config's order (the variants besides ``base``)."""
    return list(config.get("unlearn") or {})


def unlearn_settings(config: Mapping[str, Any], model: str, entry: str) -> dict[str, Any]:
    """The resolved settings of one (model, unlearn entry) training job.

    ``train`` < the model's ``train`` < the method's own defaults for train keys (``default_retain_weight``) < the
    entry's keys. Returns the train keys (``retain_split`` always a list), ``seed``, ``method`` and the method's
    own ``settings`` (a mapping). Raises ValueError naming the entry and the method for an unknown method or key.
    """
    from .methods import get_method  # the registry imports torch: only when settings are resolved

    spec = dict(config["unlearn"][entry])
    name = spec.pop("method")
    try:
        method = get_method(name)
    except ValueError as exc:
        raise ValueError(f"unlearn.{entry}: {exc}") from None
    merged = deep_merge(config["train"], config["models"][model].get("train"))
    if method.default_retain_weight is not None:
        merged["retain_weight"] = method.default_retain_weight
    merged = deep_merge(merged, {k: v for k, v in spec.items() if k in TRAIN_KEYS})
    merged.setdefault("seed", config["seed"])
    split = merged.get("retain_split") or []
    merged["retain_split"] = [split] if isinstance(split, str) else list(split)
    own = {k: v for k, v in spec.items() if k not in TRAIN_KEYS}
    method.settings_from(own, entry)  # validates the keys
    return {**merged, "method": name, "settings": own}


def needs_pairs(config: Mapping[str, Any], entry: str) -> bool:
    """Whether an unlearn entry's method trains on the perturbation stage's preference pairs."""
    from .methods import get_method

    return get_method(config["unlearn"][entry]["method"]).needs_pairs


def prompt_style(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """How questions are put to ``model`` (as a plain dict, so it can be a Snakemake param)."""
    prompt = config.get("prompt", {})
    return vars(
        PromptStyle(
            instruction=prompt.get("instruction"),
            system=prompt.get("system"),
            chat_template=bool(config["models"][model].get("chat_template", True)),
        )
    )


def perturb_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The perturbation stage's own settings: refusals only shape the pairs, so they are left out here."""
    return {k: v for k, v in config["perturb"].items() if k != "refusals"}
