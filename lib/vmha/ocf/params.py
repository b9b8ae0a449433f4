"""Parameter declarations as immutable data.

One ``Param`` drives three things at once: parsing ``OCF_RESKEY_<name>`` into a typed value,
validating it, and the ``<parameter>`` element of the metadata.  A parameter read under a
wrong name (VirtualDomain's ``OCF_RESKEY_CRM_shutdown_mode``) cannot happen here: agents
read ``ctx.params[name]`` and an undeclared name is a ``KeyError`` in the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import NamedTuple, Union

# typing.Union: a module-level alias is evaluated at import, and ``|`` of types needs 3.10.
Value = Union[str, int, bool, None]  # noqa: UP007

# The words a boolean agent parameter accepts: ocf-shellfuncs' ocf_is_true (and its false
# counterpart), so a value that worked for a heartbeat agent works here.
_TRUE = frozenset({"1", "true", "yes", "on", "y", "ja"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "nein"})
# The words Pacemaker itself takes as true in a meta attribute (crm_is_true): no "ja".  What
# the scheduler will do with a meta attribute is judged by its rule, not ours.
_PACEMAKER_TRUE = frozenset({"1", "true", "yes", "on", "y"})


def pacemaker_true(text: str | None) -> bool:
    """Whether Pacemaker reads ``text`` (a meta attribute's value) as true."""
    return (text or "").strip().lower() in _PACEMAKER_TRUE


_INT = re.compile(r"[+-]?[0-9]+\Z")


class ParamType(Enum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    SELECT = "select"


class ParamError(ValueError):
    """A value that does not parse or does not pass its check; the message names the parameter."""


class Deprecation(NamedTuple):
    desc: str
    replaced_with: tuple[str, ...] = ()


class Param(NamedTuple):
    name: str
    type: ParamType
    shortdesc: str
    longdesc: str
    default: Value = None
    required: bool = False
    unique_group: str | None = None
    reloadable: bool = False
    advanced: bool = False
    options: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    deprecated: Deprecation | None = None
    # A value other than the default is refused by validation with this reason: the
    # parameter exists in VirtualDomain, and silently ignoring it would mislead its users.
    unsupported: str | None = None
    # Extra check of a parsed, non-empty value; returns a reason when the value is wrong.
    check: Callable[[Value], str | None] | None = None

    def parse(self, raw: str | None) -> Value:
        """Typed value of ``raw``; an unset or empty value gives the default.

        Raises ParamError.
        """
        if raw is None or raw == "":
            return self.default
        value: Value
        if self.type is ParamType.BOOLEAN:
            low = raw.strip().lower()
            if low in _TRUE:
                value = True
            elif low in _FALSE:
                value = False
            else:
                raise ParamError(f"parameter {self.name}: expected a boolean (true/false), got {raw!r}")
        elif self.type is ParamType.INTEGER:
            text = raw.strip()
            if not _INT.match(text):
                raise ParamError(f"parameter {self.name}: expected an integer, got {raw!r}")
            number = int(text)
            if self.minimum is not None and number < self.minimum:
                raise ParamError(f"parameter {self.name}: {number} is below the minimum {self.minimum}")
            if self.maximum is not None and number > self.maximum:
                raise ParamError(f"parameter {self.name}: {number} is above the maximum {self.maximum}")
            value = number
        elif self.type is ParamType.SELECT:
            if raw not in self.options:
                raise ParamError(f"parameter {self.name}: {raw!r} is not one of {', '.join(self.options)}")
            value = raw
        else:
            value = raw
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ParamError(f"parameter {self.name}: {problem}")
        return value


class Params(Mapping[str, Value]):
    """Parsed parameter values by name; reading an undeclared name raises KeyError."""

    def __init__(self, values: Mapping[str, Value], explicit: Iterable[str]) -> None:
        self._values = dict(values)
        self._explicit = frozenset(explicit)

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def is_set(self, name: str) -> bool:
        """True when the user gave the parameter a non-empty value."""
        if name not in self._values:
            raise KeyError(name)
        return name in self._explicit

    def text(self, name: str) -> str:
        value = self._values[name]
        return "" if value is None else str(value)

    def integer(self, name: str) -> int:
        value = self._values[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name} is not an integer")
        return value

    def flag(self, name: str) -> bool:
        value = self._values[name]
        if not isinstance(value, bool):
            raise TypeError(f"parameter {name} is not a boolean")
        return value


class ParsedParams(NamedTuple):
    params: Params
    errors: tuple[str, ...]
    unknown: tuple[str, ...]


# Pacemaker passes these alongside the user's parameters; they are not parameters.
_NOT_PARAMS = ("CRM_meta_", "crm_feature_set")


def parse_params(declared: Iterable[Param], env: Mapping[str, str]) -> ParsedParams:
    """Parse every declared parameter from ``OCF_RESKEY_*``; collect errors instead of raising.

    A value that does not parse falls back to the default (so stop and probes can still do
    their job) and its error is reported; actions that must refuse bad input check ``errors``.
    """
    values: dict[str, Value] = {}
    explicit: list[str] = []
    errors: list[str] = []
    names = set()
    for param in declared:
        names.add(param.name)
        raw = env.get("OCF_RESKEY_" + param.name)
        if raw:
            explicit.append(param.name)
        elif param.required:
            errors.append(f"parameter {param.name} is required")
        try:
            values[param.name] = param.parse(raw)
        except ParamError as exc:
            errors.append(str(exc))
            values[param.name] = param.default
    unknown = sorted(
        key[len("OCF_RESKEY_") :]
        for key in env
        if key.startswith("OCF_RESKEY_")
        and not key[len("OCF_RESKEY_") :].startswith(_NOT_PARAMS)
        and key[len("OCF_RESKEY_") :] not in names
    )
    return ParsedParams(Params(values, explicit), tuple(errors), tuple(unknown))


def refuse_unsupported(declared: Iterable[Param], params: Params) -> list[str]:
    """Reasons for every unsupported parameter the user set to a non-default value."""
    reasons = []
    for param in declared:
        if param.unsupported and params.is_set(param.name) and params[param.name] != param.default:
            reasons.append(f"parameter {param.name} is not supported by vmha: {param.unsupported}")
    return reasons
