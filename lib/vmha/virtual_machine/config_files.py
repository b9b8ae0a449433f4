"""The files kept beside the domain: ``config`` written back from libvirt (save_config_on_stop,
sync_config_on_stop with csync2), the qcow2 overlay over ``backingfile`` (stateless), and
where ``snapshot`` saves the domain's memory.
"""

from __future__ import annotations

import os

from vmha.ocf import statefile
from vmha.ocf.codes import GenericError
from vmha.ocf.runner import CommandError
from vmha.virt.domain import Domain
from vmha.virt.errors import VirtError
from vmha.virtual_machine.resource import Resource


def save_config(res: Resource, dom: Domain) -> None:
    """Write the domain's persistent XML back to config when it differs."""
    from vmha.virt import domxml

    try:
        xml = dom.xml(inactive=True, secure=True).encode("utf-8")
        cfg = domxml.parse(xml)
    except (VirtError, domxml.DomainXmlError) as exc:
        res.log.warning(f"config not saved: {exc}")
        return
    try:
        with open(res.config_path, "rb") as fh:
            if fh.read() == xml:
                return
    except OSError:
        pass
    if cfg.name != dom.name:
        res.log.warning("config not saved: libvirt returned another domain's XML")
        return
    try:
        statefile.write_file_atomic(res.config_path, xml)
    except OSError as exc:
        res.log.warning(f"config {res.config_path} not saved: {exc.strerror}")
        return
    res.log.info(f"saved the definition of {dom.name} to {res.config_path}")
    if res.p.flag("sync_config_on_stop"):
        try:
            done = res.runner.run(["csync2", "-x", res.config_path], timeout=min(30.0, res.deadline.remaining()))
            if not done.ok:
                res.log.warning(f"csync2 -x {res.config_path} failed (rc {done.rc})")
        except CommandError as exc:
            res.log.warning(f"csync2: {exc}")


def overlay_path(res: Resource) -> str:
    return os.path.splitext(res.config_path)[0] + ".qcow2"


def prepare_overlay(res: Resource) -> None:
    """Create the qcow2 overlay over backingfile (always, when stateless)."""
    import json

    overlay = overlay_path(res)
    backing = res.p.text("backingfile")
    if os.path.exists(overlay) and not res.p.flag("stateless"):
        return
    try:
        info = res.runner.run(
            ["qemu-img", "info", "--output=json", backing], timeout=min(30.0, res.deadline.remaining())
        )
        fmt = json.loads(info.stdout).get("format", "raw") if info.ok else "raw"
        if os.path.exists(overlay):
            os.unlink(overlay)
        done = res.runner.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", str(fmt), "-b", backing, overlay],
            timeout=min(60.0, res.deadline.remaining()),
        )
    except (CommandError, ValueError) as exc:
        raise GenericError(f"cannot create overlay {overlay}: {exc}") from None
    if not done.ok:
        raise GenericError(f"qemu-img create {overlay} failed: {done.stderr.strip()[-200:]}")


def snapshot_file(res: Resource, name: str) -> str:
    """Where stop saves domain ``name`` and start restores it from ("" without ``snapshot``)."""
    directory = res.p.text("snapshot")
    return os.path.join(directory, f"{name}.state") if directory else ""
