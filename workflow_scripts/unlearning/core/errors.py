"""One exception type for every user-facing input problem.

Stages raise :class:`InputError` for problems the user can fix (a missing column, an unknown key, an empty
file) so that entry points can print the message alone, without a traceback that hides it.
"""

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """Bad input that the user must fix; the message names the file, row or key and what was expected."""


def capped(items, limit: int = 10) -> str:
    """``items`` for a message: the first ``limit`` (repr'd) and a count of the rest, so that a hundred names do not
    bury the message that lists them."""
    items = list(items)
    shown = ", ".join(repr(item) for item in items[:limit])
    if len(items) > limit:
        shown += f", ... and {len(items) - limit} more ({len(items)} in all)"
    return f"[{shown}]"


def did_you_mean(unknown: Iterable[str], valid: Iterable[str]) -> str:
    """The end of an unknown-key message: ``"; did you mean 'beta' for 'betta'?"`` for each of ``unknown`` with a
    close match among ``valid`` (difflib's closest), or ``""`` when none is close."""
    choices = sorted(valid)
    hints = [f"{close[0]!r} for {key!r}" for key in unknown if (close := difflib.get_close_matches(key, choices, 1))]
    return f"; did you mean {', '.join(hints)}?" if hints else ""
