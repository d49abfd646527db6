"""The registry of unlearning methods: one module per method, each registering a :class:`Method` subclass.

``get_method(name)`` returns the class a config's ``unlearn: {entry: {method: name}}`` names. A method defined
elsewhere (a user's module, a test) joins with the :func:`register` decorator; see README "Adding a method".
"""

from __future__ import annotations

from ...core.registry import Registry
from .base import Method

METHODS = Registry("unlearning method", "name")
#: class decorator: make ``cls`` available as ``method: cls.name``; a name may be registered only once
register = METHODS.register


def get_method(name: str) -> type[Method]:
    """The registered method ``name``; an unknown name lists the known ones (ValueError)."""
    return METHODS.lookup(name)


# the built-in methods register themselves on import
from . import dpo, grad_ascent, grad_descent, grad_diff, idk_dpo, ihl, npo, rmu, simnpo, undial  # noqa: E402, F401
