"""The agents' own errors (below :class:`schema.exceptions.MetricloomError`).

::

    MetricloomError
    └── CommandRejectedError   a well-formed command that cannot be carried out (unknown
                               template, an id the organisation does not own, ...): the
                               command is answered ``rejected`` with this message
"""

from __future__ import annotations

from schema.exceptions import MetricloomError


class CommandRejectedError(MetricloomError):
    """The command is well-formed but cannot be carried out (unknown template, …)."""
