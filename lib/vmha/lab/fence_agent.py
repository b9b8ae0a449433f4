#!/usr/bin/python3
"""fence_vmhalab: fence agent for ``vmha lab`` hosts; asks the lab power switch.

Speaks the fence-agents protocol: options as ``key=value`` lines on stdin (how
pacemaker-fenced calls it) or ``-o ACTION -n PLUG`` / ``--key=value`` arguments.
Exit status: 0 success (for ``status``: on), 2 ``status`` off, 1 failure.

This file is copied alone to /usr/sbin/fence_vmhalab while a lab is up, so it imports the
standard library only; pacemaker-controld runs it as user hacluster for ``metadata``, so
that action touches nothing but stdout.
"""

from __future__ import annotations

import socket
import sys

# Default power switch socket (also in vmha.lab.config.LabPaths): this file cannot import it.
DEFAULT_SOCKET = "/var/lib/vmha/lab/run/power.sock"
SWITCH_TIMEOUT_S = 60.0

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_vmhalab" shortdesc="Fence agent for vmha lab hosts">
<longdesc>Powers vmha lab hosts (namespace nodes) off and on through the lab power switch.</longdesc>
<vendor-url>https://github.com/vmha</vendor-url>
<parameters>
  <parameter name="action" unique="0" required="0">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="reboot"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <getopt mixed="-n, --plug=[id]"/>
    <content type="string"/>
    <shortdesc lang="en">Lab host name</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <getopt mixed="-n, --plug=[id]"/>
    <content type="string"/>
    <shortdesc lang="en">Lab host name</shortdesc>
  </parameter>
  <parameter name="socket" unique="0" required="0">
    <getopt mixed="--socket=[path]"/>
    <content type="string" default="/var/lib/vmha/lab/run/power.sock"/>
    <shortdesc lang="en">Power switch socket</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off"/>
  <action name="reboot"/>
  <action name="status"/>
  <action name="list"/>
  <action name="monitor"/>
  <action name="metadata"/>
  <action name="validate-all"/>
</actions>
</resource-agent>
"""


def ask(path: str, line: str, timeout: float = SWITCH_TIMEOUT_S) -> str:
    """One request line to the power switch, one reply line back.

    Raises OSError when the switch is unreachable or does not answer in time.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((line + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def parse_options(argv: list[str], stdin_lines: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for raw in stdin_lines:
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            opts[key.strip()] = value.strip()
    short = {"-o": "action", "-n": "plug"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in short and i + 1 < len(argv):
            opts[short[arg]] = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            opts[key] = value
        elif arg.startswith("--"):
            opts["action"] = arg[2:]  # e.g. --metadata
        i += 1
    # older callers say option= for action=, port= for plug=
    if "action" not in opts and "option" in opts:
        opts["action"] = opts["option"]
    if "plug" not in opts and "port" in opts:
        opts["plug"] = opts["port"]
    return opts


def run(opts: dict[str, str]) -> int:
    action = opts.get("action", "reboot")
    if action == "metadata":
        sys.stdout.write(METADATA)
        return 0
    path = opts.get("socket", DEFAULT_SOCKET)
    plug = opts.get("plug", "")
    try:
        if action in ("monitor", "validate-all"):
            return 0 if ask(path, "list", 10.0) else 1
        if action == "list":
            for item in ask(path, "list").split():
                print(item.split("=", 1)[0] + ",")
            return 0
        if not plug:
            print("no plug (host name) given", file=sys.stderr)
            return 1
        if action == "status":
            reply = ask(path, f"status {plug}")
            print(f"Status: {reply}")
            return 0 if reply == "ON" else 2 if reply == "OFF" else 1
        if action in ("on", "off", "reboot"):
            reply = ask(path, f"{action} {plug}")
            print(reply)
            return 0 if reply.startswith(("ON", "OFF")) else 1
    except OSError as exc:
        print(f"power switch {path}: {exc}", file=sys.stderr)
        return 1
    print(f"unsupported action {action}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    lines = [] if argv else sys.stdin.read().splitlines()
    return run(parse_options(argv, lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
