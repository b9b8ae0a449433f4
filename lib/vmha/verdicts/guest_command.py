"""The one rule for a command that runs inside a guest (through the guest agent's
``guest-exec``, never through a shell): GuestService's start/stop/status commands and
VirtualMachine's ``guest_check_command``.

The text is split into words as a shell would split them (shlex), and refused when it holds
anything a shell would read (the user expects a shell that is not there), when a word hides
such a character in quotes, when it is empty, or when the program is not an absolute path.
Pure: text in, argv or a reason out.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

# Characters a shell would read; their presence means the user expects a shell there is not.
SHELL_METACHARACTERS = frozenset(";&|<>$`\\\"'*?[](){}~!#\n\r\t\0")


class RefusedCommand(ValueError):
    """A command or service name refused before anything runs; the message names the problem."""


def split_command(text: str, what: str) -> tuple[str, ...]:
    """``text`` as an argument list (shlex words); the program must be an absolute path.

    Raises RefusedCommand for shell metacharacters, a relative program or an empty command;
    ``what`` (the parameter's name) begins its message.
    """
    bad = sorted({ch for ch in text if ch in SHELL_METACHARACTERS and ch not in "\"'"})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise RefusedCommand(f"{what}: shell metacharacter(s) {shown} refused: commands run without a shell")
    try:
        words = tuple(shlex.split(text, comments=False, posix=True))
    except ValueError as exc:
        raise RefusedCommand(f"{what}: {exc}") from None
    if not words:
        raise RefusedCommand(f"{what} is empty")
    for word in words:
        # Quotes are removed by shlex; what they hid is checked too.
        if any(ch in SHELL_METACHARACTERS for ch in word):
            raise RefusedCommand(f"{what}: argument {word!r} has a shell metacharacter; commands run without a shell")
    if not words[0].startswith("/"):
        raise RefusedCommand(f"{what}: the program {words[0]!r} must be an absolute path in the guest")
    return words


def param_check(what: str) -> Callable[[object], str | None]:
    """A parameter's ``check``: None when its value is a command ``split_command`` accepts."""

    def check(value: object) -> str | None:
        try:
            split_command(str(value), what)
        except RefusedCommand as exc:
            return str(exc)
        return None

    return check
