"""The fake libvirt keeps to the real binding: same constants, same error codes, same
lifecycle, checked side by side with libvirt-python on the in-process ``test:///default``
driver (skipped where libvirt-python is not installed).

Where the test driver and QEMU differ, the fake follows QEMU (what production runs) and
the difference is named here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes import libvirt as fl  # noqa: E402

real = pytest.importorskip("libvirt")
if isinstance(real, fl.FakeLibvirt):  # pragma: no cover - only if a test leaked its fake
    pytest.skip("sys.modules['libvirt'] is the fake", allow_module_level=True)

XML = (
    "<domain type='test'><name>fk1</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    "<memory unit='KiB'>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
)
XML_OTHER_UUID = XML.replace("5555</uuid>", "5556</uuid>")
XML_OTHER_NAME = XML.replace("<name>fk1</name>", "<name>fk2</name>")


def test_constants_have_libvirts_values() -> None:
    fake = fl.FakeLibvirt()
    names = [n for n in dir(fake) if n.startswith("VIR_")]
    assert len(names) > 60
    wrong = {n: (getattr(fake, n), getattr(real, n, None)) for n in names if getattr(fake, n) != getattr(real, n, None)}
    assert not wrong


@pytest.fixture(params=["real", "fake"])
def side(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(module, connection) for the real test driver or the fake."""
    if request.param == "real":
        real.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = real.open("test:///default")
        yield real, conn
        for dom in conn.listAllDomains():
            if dom.name().startswith("fk"):
                persistent = dom.isPersistent()
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    dom.undefine()
        conn.close()
    else:
        fake = fl.FakeLibvirt()
        fake.hypervisor("test:///default")
        conn = fake.open("test:///default")
        yield fake, conn
        conn.close()
        fake.release()


def code_of(lv: Any, fn: Callable[[], Any]) -> int:
    with pytest.raises(lv.libvirtError) as info:
        fn()
    return int(info.value.get_error_code())


def test_unknown_domain_is_no_domain(side: tuple[Any, Any]) -> None:
    lv, conn = side
    assert code_of(lv, lambda: conn.lookupByName("fk-nope")) == real.VIR_ERR_NO_DOMAIN
    assert code_of(lv, lambda: conn.lookupByUUIDString("99999999-2222-3333-4444-555555555555")) == (
        real.VIR_ERR_NO_DOMAIN
    )


def test_a_transient_domain_is_gone_once_it_stops(side: tuple[Any, Any]) -> None:
    lv, conn = side
    dom = conn.createXML(XML, 0)
    assert dom.state(0)[0] == real.VIR_DOMAIN_RUNNING
    assert not dom.isPersistent()
    assert dom.info()[3] == 2

    dom.destroyFlags(0)

    assert code_of(lv, lambda: dom.state(0)) == real.VIR_ERR_NO_DOMAIN
    assert code_of(lv, lambda: conn.lookupByName("fk1")) == real.VIR_ERR_NO_DOMAIN


def test_a_persistent_domain_stays_defined_and_refuses_lifecycle_calls_when_off(side: tuple[Any, Any]) -> None:
    lv, conn = side
    dom = conn.defineXML(XML)
    assert dom.state(0)[0] == real.VIR_DOMAIN_SHUTOFF
    assert dom.isPersistent()
    assert code_of(lv, lambda: dom.destroyFlags(0)) == real.VIR_ERR_OPERATION_INVALID
    assert code_of(lv, lambda: dom.save("/nonexistent/fk1.state")) == real.VIR_ERR_OPERATION_INVALID
    # shutdownFlags when off: QEMU says VIR_ERR_OPERATION_INVALID, the test driver
    # VIR_ERR_INTERNAL_ERROR; the fake follows QEMU.

    dom.create()
    assert dom.state(0)[0] == real.VIR_DOMAIN_RUNNING
    dom.destroyFlags(0)
    assert dom.state(0) == [real.VIR_DOMAIN_SHUTOFF, real.VIR_DOMAIN_SHUTOFF_DESTROYED]


def test_name_and_uuid_conflicts(side: tuple[Any, Any]) -> None:
    lv, conn = side
    conn.defineXML(XML)
    assert code_of(lv, lambda: conn.createXML(XML_OTHER_UUID, 0)) == real.VIR_ERR_OPERATION_FAILED
    assert code_of(lv, lambda: conn.createXML(XML_OTHER_NAME, 0)) == real.VIR_ERR_OPERATION_FAILED
    assert code_of(lv, lambda: conn.defineXML(XML_OTHER_NAME)) == real.VIR_ERR_OPERATION_FAILED
    conn.createXML(XML, 0)  # the inactive persistent domain starts from this XML
    assert code_of(lv, lambda: conn.createXML(XML, 0)) == real.VIR_ERR_OPERATION_INVALID


def test_undefine_of_a_running_domain_makes_it_transient(side: tuple[Any, Any]) -> None:
    _lv, conn = side
    dom = conn.defineXML(XML)
    dom.create()

    dom.undefine()

    assert dom.isActive() and not dom.isPersistent()


def test_save_and_restore(side: tuple[Any, Any], tmp_path: Path) -> None:
    _lv, conn = side
    dom = conn.defineXML(XML)
    dom.create()
    path = str(tmp_path / "fk1.state")

    dom.save(path)
    assert dom.state(0) == [real.VIR_DOMAIN_SHUTOFF, real.VIR_DOMAIN_SHUTOFF_SAVED]

    conn.restore(path)
    assert dom.state(0)[0] == real.VIR_DOMAIN_RUNNING


def test_closed_down_and_hung_fake_hypervisors() -> None:
    """What the real binding cannot be made to do on demand."""
    import threading

    fake = fl.FakeLibvirt()
    hv = fake.hypervisor("qemu+tcp://h1/system")
    hv.down = True
    with pytest.raises(fl.libvirtError) as info:
        fake.open("qemu+tcp://h1/system")
    assert (info.value.get_error_code(), info.value.get_error_domain()) == (
        real.VIR_ERR_SYSTEM_ERROR,
        real.VIR_FROM_RPC,
    )
    hv.down = False
    hv.hang()
    done = threading.Event()
    failed: list[int] = []

    def connect() -> None:
        try:
            fake.open("qemu+tcp://h1/system")
        except fl.libvirtError as exc:
            failed.append(exc.get_error_code())
        done.set()

    threading.Thread(target=connect, daemon=True).start()
    assert not done.wait(0.2)  # hangs...
    fake.release()
    assert done.wait(2.0) and failed  # ...until the test ends
