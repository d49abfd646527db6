"""The registry of unlearning methods: one module per method, each registering a :class:`Method` subclass.

``get_method(name)`` returns the class a config's ``unlearn: {entry: {method: name}}`` names. A method defined
elsewhere (a user's module, a test) joins with the :func:`register` decorator; see README "Adding a method".
"""

from __future__ import annotations

from .base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available as ``method: cls.name``; a name may be registered only once."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"an unlearning method named {cls.name!r} is already registered ({METHODS[cls.name]})")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """The registered method ``name``; an unknown name lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown unlearning method {name!r}; registered: {', '.join(sorted(METHODS))}") from None


# the built-in methods register themselves on import
from . import dpo, grad_ascent, grad_diff, idk_dpo, ihl, npo, rmu, simnpo, undial  # noqa: E402, F401
