#!/usr/bin/python3 -I
"""The package version and the files that carry it, all from lib/vmha/__init__.py.

    version.py upstream                      0.1.0 (``__version__`` as written)
    version.py package                       the same, in the form dpkg and rpm sort right
    version.py debian-changelog MAINTAINER   debian/changelog for this version, on stdout
    version.py rpm-spec TEMPLATE MAINTAINER  the spec with @VERSION@ and @CHANGELOG@ filled in

``__version__`` is the one place the version lives; nothing here is ever edited by hand.
The source file is parsed, not imported, so this runs without the library's dependencies.
Dates come from SOURCE_DATE_EPOCH (the packaging Makefile sets it from the last commit), so
the same commit always gives the same files.
"""

from __future__ import annotations

import ast
import datetime
import email.utils
import os
import re
import sys
import time

INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib", "vmha", "__init__.py")


def upstream_version(path: str = INIT) -> str:
    """``__version__`` from the library, without importing it.

    Raises ValueError if the file has no plain string ``__version__``.
    """
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise ValueError(f"{path}: no __version__ = '...' assignment")


def package_version(version: str) -> str:
    """A PEP 440 version as dpkg and rpm order it: pre-releases sort before the release.

    1.2.0rc1 -> 1.2.0~rc1 and 1.2.0.dev3 -> 1.2.0~dev3 ('~' sorts first in both). Raises
    ValueError for anything else that is not digits and dots, rather than guess.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)*)(?:\.?(a|b|rc|dev)(\d+))?", version)
    if not m:
        raise ValueError(f"version {version!r} is not N.N.N[a|b|rc|.dev]N")
    release, tag, num = m.groups()
    return f"{release}~{tag}{num}" if tag else release


def _epoch() -> float:
    return float(os.environ.get("SOURCE_DATE_EPOCH") or time.time())


def debian_changelog(maintainer: str) -> str:
    version = package_version(upstream_version())
    date = email.utils.format_datetime(datetime.datetime.fromtimestamp(_epoch(), tz=datetime.UTC))
    return (
        f"vmha ({version}) unstable; urgency=medium\n\n"
        f"  * vmha {upstream_version()}, packaged from the source tree (the version comes from\n"
        f"    lib/vmha/__init__.py; this file is generated at build time).\n\n"
        f" -- {maintainer}  {date}\n"
    )


def rpm_spec(template: str, maintainer: str) -> str:
    version = package_version(upstream_version())
    day = time.strftime("%a %b %d %Y", time.gmtime(_epoch()))
    changelog = (
        f"* {day} {maintainer} - {version}-1\n"
        f"- vmha {upstream_version()}, packaged from the source tree (version from lib/vmha/__init__.py)"
    )
    with open(template, encoding="utf-8") as fh:
        text = fh.read()
    if "@VERSION@" not in text or "@CHANGELOG@" not in text:
        raise ValueError(f"{template}: needs @VERSION@ and @CHANGELOG@")
    return text.replace("@VERSION@", version).replace("@CHANGELOG@", changelog)


def main(argv: list[str]) -> int:
    usage = "usage: version.py upstream | package | debian-changelog MAINTAINER | rpm-spec TEMPLATE MAINTAINER\n"
    try:
        if argv == ["upstream"]:
            sys.stdout.write(upstream_version() + "\n")
        elif argv == ["package"]:
            sys.stdout.write(package_version(upstream_version()) + "\n")
        elif len(argv) == 2 and argv[0] == "debian-changelog":
            sys.stdout.write(debian_changelog(argv[1]))
        elif len(argv) == 3 and argv[0] == "rpm-spec":
            sys.stdout.write(rpm_spec(argv[1], argv[2]))
        else:
            sys.stderr.write(usage)
            return 2
    except (OSError, SyntaxError, ValueError) as exc:
        sys.stderr.write(f"version.py: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
