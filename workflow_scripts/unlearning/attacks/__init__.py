"""Attacks that test whether forgetting holds: one module per attack kind, each registering an :class:`Attack`.

A config's ``attacks:`` maps an attack name (a column of the summary, a file name) to its settings; ``attack:``
names the kind (default: the name itself), so one kind can run with several settings
(``quantization_q8_0: {attack: quantization, gguf_type: Q8_0}``). Every attack scores only the held-out known facts
of the forget, neighbour and general persons (:mod:`unlearning.attacks.scoring`), against the base model's own
figures on the same facts, so the summary can set each variant's forgetting after the attack beside its forgetting
before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InputError
from ..core.registry import Registry
from .base import Attack, AttackInputs

ATTACKS = Registry("attack", "kind")
#: class decorator: make ``cls`` available as ``attack: cls.kind``; a kind may be registered only once
register = ATTACKS.register


def get_attack(kind: str, where: str = "attacks") -> type[Attack]:
    """The registered attack ``kind``; an unknown kind is an InputError naming ``where`` and the known kinds."""
    try:
        return ATTACKS.lookup(kind)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def attack_entries(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``attacks:`` with every entry's kind resolved and its settings checked by its kind (InputError naming the
    key otherwise): name -> settings including ``attack`` (the kind)."""
    out = {}
    for name, spec in (config.get("attacks") or {}).items():
        spec = dict(spec or {})
        kind = spec.pop("attack", name)
        cls = get_attack(kind, f"attacks.{name}")
        out[name] = {"attack": kind, **cls.settings(spec, f"attacks.{name}", config)}
    return out


def attack_runs(config: Mapping[str, Any], models: list[str], variants: list[str]) -> list[tuple[str, str, str]]:
    """Every (model, variant, attack) the DAG runs: each attack on every variant, base only where the attack
    means something there (an export of the unchanged base model is the source file itself)."""
    entries = attack_entries(config)
    return [
        (model, variant, name)
        for model in models
        for variant in variants
        for name, spec in entries.items()
        if variant != "base" or get_attack(spec["attack"]).on_base
    ]


__all__ = ["ATTACKS", "Attack", "AttackInputs", "attack_entries", "attack_runs", "get_attack", "register"]

# the built-in attacks register themselves on import
from . import in_context, quantization, relearning  # noqa: E402, F401
