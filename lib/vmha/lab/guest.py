"""Domain XML for lab guests: 128 MiB, one vCPU, direct kernel boot, a virtio disk on the shared
storage (vmha.lab.storage), one virtio NIC on the host's guest bridge (``vmN`` gets
192.168.77.(10+N) through its kernel command line).

``type='qemu'`` (TCG) because the lab must run where /dev/kvm is missing or unusable; the
agents under test must not care which.  The serial console goes to a file both hosts can
see (they share the machine's filesystem), so a guest's ticks show it surviving a migration.
"""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET

from vmha.lab.config import GUEST_BRIDGE, guest_address
from vmha.lab.image import GuestImage

MEMORY_MIB = 128
LAB_UUID_NAMESPACE = uuid.UUID("6d1f0b2e-8c49-4a51-9d55-7a3b0f9e1c11")


EMULATOR = "/usr/bin/qemu-system-x86_64"


def domain_uuid(name: str) -> str:
    """Stable per name, so a re-created lab VM is recognisably the same domain."""
    return str(uuid.uuid5(LAB_UUID_NAMESPACE, name))


def serial_log(vm_dir: str, name: str) -> str:
    return os.path.join(vm_dir, f"{name}-serial.log")


def domain_xml(
    name: str,
    img: GuestImage,
    vm_dir: str,
    emulator: str = EMULATOR,
    *,
    disk: str | None = None,
    data_disk: str | None = None,
    memory_mib: int = MEMORY_MIB,
) -> str:
    """``disk``: the path of the VM's raw disk on the shared storage (vmha.lab.storage);
    ``data_disk``: a second one (``vdb``), a database's filesystem (vmha.lab.database)."""

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, tag, attrs)
        if text is not None:
            el.text = text
        return el

    dom = ET.Element("domain", type="qemu")
    sub(dom, "name", name)
    sub(dom, "uuid", domain_uuid(name))
    sub(dom, "memory", str(memory_mib), unit="MiB")
    sub(dom, "vcpu", "1")
    os_el = sub(dom, "os")
    sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    sub(os_el, "kernel", img.kernel)
    sub(os_el, "initrd", img.initrd)
    address = guest_address(name)
    # the guest's init configures eth0 from vmha.ip= (see image.INIT_SCRIPT)
    sub(os_el, "cmdline", "console=ttyS0 quiet panic=-1" + (f" vmha.ip={address}" if address else ""))
    features = sub(dom, "features")
    sub(features, "acpi")
    sub(dom, "on_poweroff", "destroy")
    sub(dom, "on_reboot", "restart")
    sub(dom, "on_crash", "destroy")
    devices = sub(dom, "devices")
    sub(devices, "emulator", emulator)
    for path, dev in ((disk, "vda"), (data_disk, "vdb")):
        if not path:
            continue
        el = sub(devices, "disk", type="file", device="disk")
        # no host page cache between an acknowledged write and the storage, and an I/O
        # error pauses the guest rather than handing it a failed write it may not survive
        sub(el, "driver", name="qemu", type="raw", cache="none", error_policy="stop", rerror_policy="stop")
        source = sub(el, "source", file=path)
        # the image carries its owner (storage.create_disk): libvirt must not chown a file
        # another host's QEMU may have open
        sub(source, "seclabel", model="dac", relabel="no")
        sub(el, "target", dev=dev, bus="virtio")
    serial = sub(devices, "serial", type="file")
    sub(serial, "source", path=serial_log(vm_dir, name), append="on")
    sub(serial, "target", port="0")
    iface = sub(devices, "interface", type="bridge")
    sub(iface, "source", bridge=GUEST_BRIDGE)
    sub(iface, "model", type="virtio")
    channel = sub(devices, "channel", type="unix")
    sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    sub(devices, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


SLOW_FLAG = "/run/vmha-slow-qemu"  # in a host's private /run: only that host's QEMU is slow


def write_slow_emulator(path: str, slow_s: int) -> None:
    """Fault injection: an emulator wrapper that, on a host whose private /run holds
    ``SLOW_FLAG``, sleeps ``slow_s`` before the real QEMU when libvirt probes its capabilities
    (``-machine none``, flag ``probe``) or when it launches the guest (flag ``launch``)."""
    text = f"""#!/bin/sh
# vmha lab fault injection: slow on a host that holds {SLOW_FLAG}
if [ -e {SLOW_FLAG} ]; then
    case " $* " in
    *" -machine none"*) [ "$(cat {SLOW_FLAG})" = probe ] && sleep {int(slow_s)} ;;
    *) [ "$(cat {SLOW_FLAG})" = launch ] && sleep {int(slow_s)} ;;
    esac
fi
exec {EMULATOR} "$@"
"""
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o755)  # noqa: S103 - libvirt's QEMU user runs it
