"""vmha.virt.host on libvirt's in-process test:///default driver, and its XML reading."""

from __future__ import annotations

import pytest
from vmha.deadline import Deadline
from vmha.virt import host
from vmha.virt.connection import Connection
from vmha.virt.errors import HypervisorUnreachable


@pytest.fixture
def conn():
    with Connection.open("test:///default", Deadline.after(10), readonly=True) as c:
        yield c


def test_host_info(conn):
    info = host.host_info(conn)
    assert info.cpus == 16 and info.memory_mib == 3072 and info.lib_version > 0


def test_running_domains(conn):
    doms = host.running_domains(conn)
    assert [(d.name, d.max_kib, d.current_kib, d.xml) for d in doms] == [("test", 8388608, 2097152, "")]
    (with_xml,) = host.running_domains(conn, with_xml=True)
    assert host.interface_sources(with_xml.xml) == [host.InterfaceSource("network", "default")]


def test_pools(conn):
    (pool,) = host.pools(conn)
    assert pool.name == "default-pool" and pool.active and pool.capacity == pool.available > 0
    assert (pool.kind, pool.target) == ("dir", "/default-pool") and pool.kind in host.FILESYSTEM_POOLS


def test_pool_target():
    xml = "<pool type='netfs'><name>n</name><target><path> /mnt/n </path></target></pool>"
    assert host.pool_target(xml) == ("netfs", "/mnt/n")
    assert host.pool_target("<pool type='rbd'><name>r</name></pool>") == ("rbd", "")
    assert host.pool_target("<!DOCTYPE x [<!ENTITY e 'x'>]><pool type='dir'/>") == ("", "")
    assert host.pool_target("not xml") == ("", "")


def test_network_bridge(conn):
    assert host.network_bridge(conn, "default") == "virbr0"
    assert host.network_bridge(conn, "no-such-network") is None


def test_unreachable_hypervisor(tmp_path):
    with pytest.raises(HypervisorUnreachable):
        Connection.open(f"qemu+unix:///system?socket={tmp_path}/none", Deadline.after(5), readonly=True)


XML = """<domain type='kvm'><name>a</name><devices>
  <interface type='bridge'><source bridge='br0'/><target dev='vnet0'/></interface>
  <interface type='network'><source network='lab'/></interface>
  <interface type='direct'><source dev='eth1' mode='bridge'/></interface>
  <interface type='user'/>
  <interface type='bridge'/>
  <interface type='vhostuser'><source type='unix' path='/run/x' mode='client'/></interface>
</devices></domain>"""


def test_interface_sources():
    assert host.interface_sources(XML) == [
        host.InterfaceSource("bridge", "br0"),
        host.InterfaceSource("network", "lab"),
        host.InterfaceSource("direct", "eth1"),
    ]


def test_interface_sources_of_garbage_is_nothing():
    assert host.interface_sources("<domain") == []
    assert host.interface_sources("<domain><devices/></domain>") == []
