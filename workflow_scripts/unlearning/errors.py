"""One exception type for every user-facing input problem.

Stages raise :class:`InputError` for problems the user can fix (a missing column, an unknown key, an empty
file) so that entry points can print the message alone, without a traceback that hides it.
"""


class InputError(ValueError):
    """Bad input that the user must fix; the message names the file, row or key and what was expected."""
