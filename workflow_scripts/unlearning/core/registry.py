"""A name -> class registry, for the plug-in kinds that are one module each (unlearning methods, attacks)."""

from __future__ import annotations

from typing import Any


class Registry(dict[str, type]):
    """Classes by the value of their ``key`` attribute (``name`` for methods, ``kind`` for attacks); ``what`` names
    the kind of thing in errors ("unlearning method")."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__()
        self.what, self.key = what, key

    def register(self, cls: type[Any]) -> type[Any]:
        """Class decorator: add ``cls`` under its ``key``; a name may be registered only once."""
        name = getattr(cls, self.key)
        if name in self and self[name] is not cls:
            raise ValueError(f"an {self.what} named {name!r} is already registered ({self[name]})")
        self[name] = cls
        return cls

    def lookup(self, name: str) -> type[Any]:
        """The class registered as ``name``; ValueError listing the registered names otherwise."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; registered: {', '.join(sorted(self))}") from None
