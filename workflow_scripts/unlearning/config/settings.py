"""Derive per-job settings from the validated config.

The config has one ``train:`` block for all models and methods, optional per-model overrides
(``models.<m>.train``) and the ``unlearn:`` entries, each naming a registered method with overrides of its own;
jobs must see exactly the merged slice they depend on, so that Snakemake reruns one (model, entry) chain only when
its own settings change.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections.abc import Mapping
from typing import Any

from ..inference.prompting import DEFAULT_FEW_SHOT, PromptStyle


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
        "adapter", "forget_data", "retain_data",
    }
)  # fmt: skip
ENTRY_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # an unlearn: entry name becomes a folder and a {variant} wildcard


# short names of grid keys in expanded entry names (any other key is used as it is)
GRID_ABBREVIATIONS = {
    "learning_rate": "lr", "epochs": "ep", "batch_size": "bs", "retain_weight": "rw", "retain_kind": "rk",
    "lora.r": "r", "lora.alpha": "alpha", "lora.target_modules": "tm", "lora.layers": "layers",
}  # fmt: skip


def _grid_axes(grid: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list]]:
    """``(key path, values)`` of every axis of a ``grid:`` (a nested mapping, e.g. ``lora: {r: [8, 16]}``)."""
    axes = []
    for key, value in grid.items():
        path = (*prefix, key)
        if isinstance(value, Mapping):
            axes += _grid_axes(value, path)
        elif isinstance(value, list) and value:
            repeated = sorted({_label(v) for v in value if sum(_label(w) == _label(v) for w in value) > 1})
            if repeated:
                raise ValueError(f"grid key {'.'.join(path)} repeats the value(s) {', '.join(repeated)}")
            axes.append((path, value))
        else:
            raise ValueError(f"grid key {'.'.join(path)} must be a non-empty list of values, not {value!r}")
    return axes


def _label(value: Any) -> str:  # noqa: ANN401
    """A grid value as it appears in an entry name (letters, digits, '.', '_' and '-' only)."""
    if isinstance(value, list):
        return "-".join(_label(v) for v in value)
    text = (
        f"{value:g}" if isinstance(value, float) else str(value).lower() if value in (None, True, False) else str(value)
    )
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def _grid_points(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``unlearn:`` entries with every ``grid:`` expanded (``seeds:`` kept as a key): one per combination."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in (config.get("unlearn") or {}).items():
        if not spec.get("grid"):
            out[name] = dict(spec)
            continue
        base = {k: v for k, v in spec.items() if k != "grid"}
        try:
            axes = _grid_axes(spec["grid"])
        except ValueError as exc:
            raise ValueError(f"unlearn.{name}: {exc}") from None
        for combo in itertools.product(*(values for _, values in axes)):
            point: dict[str, Any] = copy.deepcopy(base)
            parts = []
            for (path, _), value in zip(axes, combo, strict=True):
                point = deep_merge(point, functools.reduce(lambda inner, key: {key: inner}, reversed(path), value))
                parts.append(GRID_ABBREVIATIONS.get(".".join(path), path[-1]) + _label(value))
            expanded = f"{name}_{'_'.join(parts)}"
            if expanded in out or expanded in config["unlearn"]:
                raise ValueError(f"unlearn.{name}: the grid point {expanded!r} collides with another entry's name")
            out[expanded] = point
    return out


MAX_SEED = 2**32 - 1


def _seeds(config: Mapping[str, Any], point: str, spec: Mapping[str, Any]) -> list[int] | None:
    """The seeds an entry (a grid point) is trained with: its own ``seeds:``, else the top-level one, else None."""
    seeds = spec.get("seeds", config.get("seeds"))
    if seeds is None:
        return None
    where = f"unlearn.{point}.seeds" if "seeds" in spec else "seeds"
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{where}: expected a non-empty list of integer seeds, got {seeds!r}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | float) or int(s) != s]
    if bad:
        raise ValueError(f"{where}: seeds must be integers, got {bad[0]!r}")
    out_of_range = [int(s) for s in seeds if not 0 <= s <= MAX_SEED]
    if out_of_range:
        raise ValueError(f"{where}: seeds must lie in 0..{MAX_SEED} (torch's and numpy's range), got {out_of_range[0]}")
    repeated = sorted({int(s) for s in seeds if sum(int(t) == int(s) for t in seeds) > 1})
    if repeated:
        raise ValueError(f"{where}: the seed(s) {', '.join(map(str, repeated))} are repeated")
    return [int(s) for s in seeds]


def seed_groups(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per entry (grid point) trained with ``seeds:``: its per-seed entries, ``<entry>_seed<seed>`` in seed order.
    The summary pools them under the entry's own name."""
    return {
        point: [f"{point}_seed{seed}" for seed in seeds]
        for point, spec in _grid_points(config).items()
        if (seeds := _seeds(config, point, spec)) is not None
    }


def expand_unlearn(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``unlearn:`` entries with every ``grid:`` and ``seeds:`` expanded: one entry per training run.

    An entry ``npo: {method: npo, grid: {learning_rate: [1e-4, 3e-4], lora: {r: [8, 16]}}}`` becomes the four
    entries ``npo_lr0.0001_r8``, ``npo_lr0.0001_r16``, ``npo_lr0.0003_r8`` and ``npo_lr0.0003_r16``, each an
    ordinary entry with those values set (a grid value overrides the entry's own). With ``seeds: [42, 43]`` (the
    entry's or the top level's) each of those becomes ``<name>_seed42`` and ``<name>_seed43``, with ``seed`` set.
    Names that collide, and a seed list that is empty, repeats a seed or holds a non-integer, are errors.
    """
    out: dict[str, dict[str, Any]] = {}
    points = _grid_points(config)
    for point, spec in points.items():
        seeds = _seeds(config, point, spec)
        spec = {k: v for k, v in spec.items() if k != "seeds"}
        if seeds is None:
            out[point] = spec
        for seed in seeds or ():
            name = f"{point}_seed{seed}"
            if name in points:
                raise ValueError(f"unlearn.{point}: the seeded run {name!r} collides with another entry's name")
            out[name] = {**spec, "seed": seed}
    return out


def unlearn_entries(config: Mapping[str, Any]) -> list[str]:
    """The ``unlearn:`` entry names, grids and seeds expanded, in the config's order (the variants besides
    ``base``)."""
    return list(expand_unlearn(config))


def sweep_of(config: Mapping[str, Any]) -> dict[str, str]:
    """Grid point (the name its seeds are pooled under) -> the ``unlearn:`` entry whose grid made it (an entry
    without a grid maps to itself)."""
    return {
        point: name
        for name, spec in (config.get("unlearn") or {}).items()
        for point in _grid_points({"unlearn": {name: spec}})
    }


def pooled_name(config: Mapping[str, Any]) -> dict[str, str]:
    """Expanded entry -> the name it is reported under: its grid point for a seeded run, else itself."""
    of_run = {run: point for point, runs in seed_groups(config).items() for run in runs}
    return {run: of_run.get(run, run) for run in expand_unlearn(config)}


def unlearn_settings(config: Mapping[str, Any], model: str, entry: str) -> dict[str, Any]:
    """The resolved settings of one (model, unlearn entry) training job.

    ``train`` < the model's ``train`` < the method's own defaults for train keys (``default_retain_weight``) < the
    entry's keys. Returns the train keys (``retain_split`` always a list, ``adapter`` always set, no ``lora`` with
    ``adapter: full``), ``seed``, ``method`` and the method's own ``settings`` (a mapping). Raises ValueError naming
    the entry and the method for an unknown method or key, and naming the keys for ``lora:`` keys in an entry that
    sets ``adapter: full``.
    """
    from ..training.methods import get_method  # the registry imports torch: only when settings are resolved

    entries = expand_unlearn(config)
    if entry not in entries:
        raise ValueError(f"unlearn: no entry {entry!r}; the entries are {', '.join(entries)}")
    spec = dict(entries[entry])
    name = spec.pop("method")
    try:
        method = get_method(name)
    except ValueError as exc:
        raise ValueError(f"unlearn.{entry}: {exc}") from None
    merged = deep_merge(config["train"], config["models"][model].get("train"))
    if method.default_retain_weight is not None:
        merged["retain_weight"] = method.default_retain_weight
    merged = deep_merge(merged, {k: v for k, v in spec.items() if k in TRAIN_KEYS})
    merged.setdefault("adapter", "lora")
    if merged["adapter"] == "full":
        if spec.get("lora"):  # the lora: inherited from train: is simply unused by full fine-tuning
            keys = ", ".join(f"lora.{k}" for k in sorted(spec["lora"]))
            raise ValueError(
                f"unlearn.{entry}: adapter: full trains every weight, so the entry's {keys} cannot apply; "
                f"remove {'it' if len(spec['lora']) == 1 else 'them'}, or use adapter: lora"
            )
        merged.pop("lora", None)
    merged.setdefault("seed", config["seed"])
    for key in ("forget_data", "retain_data"):  # qa is the default: absent, so that naming it reruns nothing
        if merged.get(key) == "qa":
            del merged[key]
    split = merged.get("retain_split") or []
    merged["retain_split"] = [split] if isinstance(split, str) else list(split)
    own = {k: v for k, v in spec.items() if k not in TRAIN_KEYS}
    method.settings_from(own, entry, other_keys=TRAIN_KEYS)  # validates the keys
    return {**merged, "method": name, "settings": own}


def needs_pairs(config: Mapping[str, Any], entry: str) -> bool:
    """Whether an unlearn entry's method trains on the perturbation stage's preference pairs."""
    from ..training.methods import get_method

    return get_method(expand_unlearn(config)[entry]["method"]).needs_pairs


def pairs_file(config: Mapping[str, Any], model: str, entry: str) -> str | None:
    """The DPO pairs an entry's unlearn job of ``model`` reads: by its ``pairing:`` (a setting of the methods that
    train on the perturbation stage's pairs, e.g. dpo), ``short`` (the default) the shared short-answer pairs,
    ``own_answer`` the pairs built from ``model``'s own base answers; None for a method that reads no pairs, and for
    an entry that trains on the corpus alone (``forget_data: corpus``)."""
    if not needs_pairs(config, entry) or unlearn_settings(config, model, entry).get("forget_data") == "corpus":
        return None  # corpus rows pair with refusals (unlearning.training.methods.dpo)
    if expand_unlearn(config)[entry].get("pairing", "short") == "own_answer":
        return f"results/perturb/own_pairs/{model}.parquet"
    return "results/perturb/dpo_pairs.parquet"


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
