"""The config against its JSON schema (``schemas/config.schema.yaml``), with an error a person can act on.

Snakemake's ``validate`` reports a violation together with the whole schema (about a thousand lines for this one).
:func:`schema_problem` finds the same violation (jsonschema's ``best_match``) and names only the key path and what
is wrong; for an unknown key, the keys allowed there and the closest one. The Snakefile runs it before
``validate``, which then only fills in the schema's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from ..core.errors import did_you_mean

UNKNOWN_KEY = ("additionalProperties", "unevaluatedProperties")


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` itself, or the part of ``root`` its local ``$ref`` (``#/$defs/...``) points to."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    for part in ref[2:].split("/"):
        root = root[part]
    return root


def _allowed_keys(schema: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[set[str], list[str]]:
    """The property names and name patterns a schema evaluates, with those of its ``allOf`` parts and ``$ref``s."""
    schema = _resolve(schema, root)
    names, patterns = set(schema.get("properties", {})), list(schema.get("patternProperties", {}))
    for part in schema.get("allOf", []):
        more_names, more_patterns = _allowed_keys(part, root)
        names |= more_names
        patterns += more_patterns
    return names, patterns


def _unknown_key_message(error: jsonschema.ValidationError, root: Mapping[str, Any]) -> str:
    names, patterns = _allowed_keys(error.schema, root)
    unknown = sorted(k for k in error.instance if k not in names and not any(re.search(p, k) for p in patterns))
    plural = "s" if len(unknown) > 1 else ""
    message = f"unknown key{plural} {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(names))})"
    return message + did_you_mean(unknown, names)


def schema_problem(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """The config's most relevant schema violation as one line (``config: <key path>: <what is wrong>``), or None
    when the config is valid. An unknown key lists the allowed keys and, where one is close, a "did you mean".

    An error inside an ``allOf`` part makes every key of the enclosing object "unevaluated" too; that consequence
    is reported only when there is no other error."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(config))
    causes = [e for e in errors if e.validator != "unevaluatedProperties"]
    error = jsonschema.exceptions.best_match(causes or errors)
    if error is None:
        return None
    where = ".".join(str(key) for key in error.absolute_path) or "top level"
    if error.validator in UNKNOWN_KEY and isinstance(error.instance, Mapping):
        return f"config: {where}: {_unknown_key_message(error, schema)}"
    return f"config: {where}: {error.message}"
