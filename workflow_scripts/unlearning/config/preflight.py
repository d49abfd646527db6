"""Contradictions in the config, found when Snakemake parses the workflow, before any job runs.

The schema checks each key on its own; these checks compare keys with each other and with the data the config
names, so that a run that cannot work stops at once (naming the keys) instead of after data preparation,
perturbation and pair building, with a raw error from deep inside training. Every check is a small function of
plain mappings, so a stage can repeat one on the real data (for instance :func:`retain_problem` with the splits
that ``qa.parquet`` really holds) and each unlearning entry can be checked with its own merged settings.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..data.person_names import clean_names, names_only_columns
from ..data.sources import (
    check_column_mapping,
    describe,
    load_local,
    local_content,
    local_header,
    missing_columns,
)
from .settings import expand_unlearn, pairs_file, unlearn_settings

PERSON_ROLES = ("forget", "retain", "general")


def role_of(split: str) -> str:
    """The person set a QA split comes from: ``retain_train`` and ``retain`` -> ``retain``."""
    return split.split("_", 1)[0]


def configured_splits(persons: Mapping[str, Any]) -> set[str]:
    """Split names (old and new style) that the configured person sets can fill."""
    roles = [role for role in PERSON_ROLES if persons.get(role)]
    return {f"{role}{suffix}" for role in roles for suffix in ("", "_train", "_test")}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def retain_problem(
    settings: Mapping[str, Any],
    splits_with_data: Collection[str],
    prefix: str = "train",
    split_prefix: str | None = None,
) -> tuple[str | None, str | None]:
    """(error, warning) for the retain term of one settings mapping (``retain_weight``, ``retain_split``).

    ``splits_with_data`` are the QA splits that have rows (or, before the data exist, :func:`configured_splits`).
    A positive weight with none of its splits available is an error; some of them missing is a warning (the term
    still has data). ``prefix`` is the config path of the settings (``train``, ``models.x.train``,
    ``unlearn.npo``) that sets ``retain_weight``, and ``split_prefix`` (default: ``prefix``) the one that sets
    ``retain_split``; both are used in the messages.
    """
    split_prefix = split_prefix or prefix
    weight = float(settings.get("retain_weight") or 0)
    if weight <= 0:
        return None, None
    wanted = _as_list(settings.get("retain_split"))
    missing = [s for s in wanted if s not in splits_with_data]
    if not wanted or len(missing) == len(wanted):
        sets = sorted({f"data.persons.{role_of(s)}" for s in wanted}) or ["data.persons.retain"]
        return (
            f"{prefix}.retain_weight is {weight:g} but {split_prefix}.retain_split {wanted} has no data "
            f"({' and '.join(sets)} not set or empty): the retain term would train on nothing. Configure "
            f"{' or '.join(sets)}, or set {prefix}.retain_weight: 0",
            None,
        )
    if missing:
        return None, (
            f"{split_prefix}.retain_split names {missing} but there is no such data "
            f"({', '.join(sorted({f'data.persons.{role_of(s)}' for s in missing}))} not set): the retain term "
            f"uses {[s for s in wanted if s not in missing]} only"
        )
    return None, None


def length_problem(settings: Mapping[str, Any], prefix: str = "train") -> str | None:
    """A prompt budget that leaves no room for the answer: ``max_prompt_length`` >= ``max_length`` (top-level
    training keys, or under ``dpo:`` in the older layout)."""
    for group, values in (("", settings), ("dpo.", settings.get("dpo") or {})):
        if "max_length" in values and "max_prompt_length" in values:
            if values["max_prompt_length"] >= values["max_length"]:
                return (
                    f"{prefix}.{group}max_prompt_length ({values['max_prompt_length']}) must be below "
                    f"{prefix}.{group}max_length ({values['max_length']}): the answer would get no tokens"
                )
            return None
    return None


def perturb_problems(perturb: Mapping[str, Any]) -> list[str]:
    """Contradictions inside ``perturb:``."""
    problems = []
    if perturb.get("template") and perturb.get("template_file"):
        problems.append(
            "perturb.template and perturb.template_file are both set; only one prompt template can be used, "
            "remove one of them"
        )
    return problems


def perturber_warning(config: Mapping[str, Any]) -> str | None:
    """``perturb.model`` that is no key of ``models:`` but close to one: most likely a typo, which would otherwise
    surface only when the perturbation job looks it up on the hub."""
    name = (config.get("perturb") or {}).get("model")
    if not name or name in config["models"] or "/" in name or Path(name).exists():
        return None
    close = difflib.get_close_matches(name, list(config["models"]), n=1)
    if close:
        return (
            f"perturb.model {name!r} is not a key of models: (did you mean {close[0]!r}?); it will be looked up as a "
            "Hugging Face hub id"
        )
    return None


def pair_source_problem(perturb: Mapping[str, Any]) -> str | None:
    """No way to make DPO preference pairs: no perturber, no pre-made file and no refusals."""
    refusals = (perturb.get("refusals") or {}).get("mode", "off")
    if not perturb.get("model") and not perturb.get("premade") and refusals == "off":
        return (
            "perturb.model and perturb.premade are both unset and perturb.refusals.mode is 'off': nothing can make "
            "DPO pairs. Set perturb.model (a key of models: or a model path), perturb.premade (a file of wrong "
            "answers) or perturb.refusals.mode: only"
        )
    return None


Layers = list[tuple[str, Mapping[str, Any]]]


def training_runs(config: Mapping[str, Any]) -> list[tuple[Layers, Mapping[str, Any]]]:
    """Every training job's merged settings (``unlearning.config.settings.unlearn_settings``, per model and ``unlearn:``
    entry, grids expanded), with the config layers they come from (innermost first, as ``(config path, mapping)``)."""
    runs: list[tuple[Layers, Mapping[str, Any]]] = []
    for model in config["models"]:
        own = config["models"][model].get("train") or {}
        layers: Layers = [(f"models.{model}.train", own), ("train", config.get("train") or {})]
        for entry, spec in expand_unlearn(config).items():
            try:
                merged = unlearn_settings(config, model, entry)
            except ValueError:
                continue  # an unknown method or key: the unlearn: entries' own validation names it
            runs.append(([(f"unlearn.{entry}", spec), *layers], merged))
    return runs


def layer_of(layers: Layers, keys: Collection[str]) -> str:
    """The config path of the innermost layer that sets any of ``keys`` (the outermost when none does)."""
    return next((path for path, mapping in layers if set(keys) & set(mapping)), layers[-1][0])


def any_needs_pairs(config: Mapping[str, Any]) -> bool:
    """Whether some ``unlearn:`` entry of some model reads the perturbation stage's DPO pairs (its method trains on
    them, and it does not train on the corpus alone: :func:`unlearning.config.settings.pairs_file`)."""
    for entry in expand_unlearn(config):
        try:
            if any(pairs_file(config, model, entry) for model in config["models"]):
                return True
        except ValueError:
            continue  # an unknown method or key: the unlearn: entries' own validation names it
    return False


def check_config(config: Mapping[str, Any]) -> list[str]:
    """Raise one :class:`InputError` listing every contradiction of a validated config; return the warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    persons = config["data"]["persons"]
    for role in PERSON_ROLES:
        if persons.get(role) and "names" in persons[role]:
            try:  # an empty list or a name given twice
                clean_names(persons[role]["names"], f"data.persons.{role}.names", "item")
            except InputError as exc:
                errors.append(str(exc))
        elif persons.get(role):
            mapping = {**persons["columns"], **(persons[role].get("columns") or {})}
            try:
                check_column_mapping(mapping, f"data.persons.{role}")
            except InputError as exc:
                errors.append(str(exc))
            where = f"data.persons.{role} ({describe(persons[role])})"
            try:  # read as the data stage reads it: by its content, whatever its extension says
                content, header = local_content(persons[role]), local_header(persons[role])
            except InputError as exc:  # content no reader takes (an Excel workbook, an empty file): named as such
                errors.append(f"data.persons.{role}: {exc}")
                continue
            if content is not None and content.note:
                warnings.append(f"data.persons.{role}: {content.note}")
            if header is not None and names_only_columns(header, mapping):
                try:  # a names-only file is small: an empty cell or a name given twice is found before any job
                    clean_names(list(load_local(persons[role]["path"])[mapping["person"]]), where)
                except InputError as exc:
                    errors.append(str(exc))
            elif header is not None:
                errors += [e for e in (missing_columns(header, mapping, where),) if e]
    try:
        check_column_mapping(config["data"]["truthfulqa"]["columns"], "data.truthfulqa")
    except InputError as exc:
        errors.append(str(exc))
    try:
        content = local_content(config["data"]["truthfulqa"])
        if content is not None and content.note:
            warnings.append(f"data.truthfulqa: {content.note}")
    except InputError as exc:
        errors.append(f"data.truthfulqa: {exc}")
    errors += perturb_problems(config.get("perturb") or {})
    if any_needs_pairs(config):
        errors += [e for e in (pair_source_problem(config.get("perturb") or {}),) if e]
    warnings += [w for w in (perturber_warning(config),) if w]
    available = configured_splits(persons)
    for layers, settings in training_runs(config):
        error, warning = retain_problem(
            settings, available, layer_of(layers, ("retain_weight",)), layer_of(layers, ("retain_split",))
        )
        length = length_problem(settings, layer_of(layers, ("max_length", "max_prompt_length", "dpo")))
        errors += [e for e in (error, length) if e and e not in errors]
        warnings += [w for w in (warning,) if w and w not in warnings]
    if errors:
        raise InputError(
            "the config contradicts itself or its data (nothing was run):\n" + "\n".join(f"- {e}" for e in errors)
        )
    return warnings
