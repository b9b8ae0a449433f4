from __future__ import annotations

import pytest
from vmha.virt.domxml import MAX_XML_BYTES, DomainXmlError, parse, uuid_and_name

NORMAL = b"""<?xml version="1.0"?>
<!-- written by virt-install -->
<domain type='kvm'>
  <name> vm1 </name>
  <uuid>C7A5FDBD-EDAF-9455-926A-D65C16DB1809</uuid>
  <memory unit='MiB'>2048</memory>
  <currentMemory unit='MiB'>1024</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/vm1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='fast' volume='data'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='bulk' volume='archive'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='fast' volume='logs'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='sda'/></disk>
    <interface type='network'><source network='default'/></interface>
    <interface type='network'><source network='backend'/></interface>
    <interface type='bridge'><source bridge='br0'/></interface>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
  </devices>
</domain>
"""


def domain(inner: str, attrs: str = "type='kvm'") -> bytes:
    return f"<domain {attrs}><name>vm1</name>{inner}</domain>".encode()


class TestNormal:
    def test_facts(self):
        cfg = parse(NORMAL)
        assert cfg.name == "vm1"
        assert cfg.uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"
        assert cfg.domain_type == "kvm"
        assert cfg.vcpus == 2  # current= wins over the maximum
        assert cfg.max_memory_kib == 2048 * 1024
        assert cfg.emulator == "/usr/bin/qemu-system-x86_64"
        assert cfg.has_guest_agent is True
        assert cfg.disk_files == ("/var/lib/libvirt/images/vm1.qcow2",)
        assert cfg.pools == ("bulk", "fast")
        assert cfg.networks == ("backend", "default")

    def test_uuid_and_name(self):
        assert uuid_and_name(NORMAL) == ("c7a5fdbd-edaf-9455-926a-d65c16db1809", "vm1")

    def test_minimal_domain_defaults(self):
        cfg = parse(domain(""))
        assert (cfg.uuid, cfg.vcpus, cfg.max_memory_kib, cfg.emulator) == (None, 1, 0, None)
        assert (cfg.has_guest_agent, cfg.disk_files, cfg.pools, cfg.networks) == (False, (), (), ())

    def test_vcpu_without_current(self):
        assert parse(domain("<vcpu>3</vcpu>")).vcpus == 3

    def test_other_channel_is_not_the_agent(self):
        xml = domain(
            "<devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.1'/></channel></devices>"
        )
        assert parse(xml).has_guest_agent is False

    def test_bad_vcpu(self):
        with pytest.raises(DomainXmlError, match="vcpu"):
            parse(domain("<vcpu>many</vcpu>"))


class TestMemoryUnits:
    @pytest.mark.parametrize(
        ("value", "unit", "kib"),
        [
            ("1048576", None, 1048576),  # KiB is libvirt's default unit
            ("1048576", "KiB", 1048576),
            ("1048576", "k", 1048576),
            ("1024", "MiB", 1048576),
            ("1024", "M", 1048576),
            ("1", "GiB", 1048576),
            ("1", "G", 1048576),
            ("1", "TiB", 1024**3),
            ("1073741824", "bytes", 1048576),
            ("1073741824", "b", 1048576),
            ("1000", "KB", 976),
            ("1", "GB", 976562),
        ],
    )
    def test_unit(self, value, unit, kib):
        attr = f" unit='{unit}'" if unit else ""
        assert parse(domain(f"<memory{attr}>{value}</memory>")).max_memory_kib == kib

    def test_unknown_unit(self):
        with pytest.raises(DomainXmlError, match="unknown unit"):
            parse(domain("<memory unit='furlongs'>1</memory>"))

    def test_not_a_number(self):
        with pytest.raises(DomainXmlError, match="not a number"):
            parse(domain("<memory unit='MiB'>lots</memory>"))


class TestRefused:
    @pytest.mark.parametrize("data", [b"", b"<domain>", b"<domain><name>x</domain>", b"not xml", b"\xff\xfe<"])
    def test_malformed(self, data):
        with pytest.raises(DomainXmlError):
            parse(data)

    def test_wrong_root(self):
        with pytest.raises(DomainXmlError, match="<network>"):
            parse(b"<network><name>default</name></network>")

    def test_namespaced_root(self):
        with pytest.raises(DomainXmlError):
            parse(b"<domain xmlns='http://example.com/x'><name>vm1</name></domain>")

    @pytest.mark.parametrize("inner", ["", "<name></name>", "<name>   </name>"])
    def test_missing_name(self, inner):
        with pytest.raises(DomainXmlError, match="no <name>"):
            parse(f"<domain type='kvm'>{inner}</domain>".encode())

    @pytest.mark.parametrize("name", ["a/b", ".hidden", "a&#10;b", "a&#9;b"])
    def test_unusable_name(self, name):
        with pytest.raises(DomainXmlError, match="not usable"):
            parse(f"<domain><name>{name}</name></domain>".encode())

    def test_doctype_without_entities(self):
        with pytest.raises(DomainXmlError, match="DOCTYPE"):
            parse(b"<!DOCTYPE domain><domain><name>vm1</name></domain>")

    def test_internal_entity(self):
        data = b'<!DOCTYPE domain [<!ENTITY n "vm1">]><domain><name>&n;</name></domain>'
        with pytest.raises(DomainXmlError, match="DOCTYPE"):
            parse(data)

    @pytest.mark.parametrize("form", ["SYSTEM '{path}'", "SYSTEM 'file://{path}'", "PUBLIC 'x' '{path}'"])
    def test_external_entity_never_reads_the_file(self, tmp_path, form):
        secret = tmp_path / "secret.txt"
        secret.write_text("TOPSECRET-4f1c9a")
        decl = form.format(path=secret)
        data = f"<!DOCTYPE domain [<!ENTITY xxe {decl}>]><domain><name>&xxe;</name></domain>".encode()
        with pytest.raises(DomainXmlError) as info:
            parse(data)
        assert "TOPSECRET" not in str(info.value)
        assert "TOPSECRET" not in repr(info.value.__cause__)
        assert "TOPSECRET" not in repr(info.value.__context__)

    def test_external_dtd_never_read(self, tmp_path):
        dtd = tmp_path / "evil.dtd"
        dtd.write_text('<!ENTITY leak "TOPSECRET-dtd">')
        data = f"<!DOCTYPE domain SYSTEM '{dtd}'><domain><name>&leak;</name></domain>".encode()
        with pytest.raises(DomainXmlError) as info:
            parse(data)
        assert "TOPSECRET" not in str(info.value)

    def test_parameter_entity(self, tmp_path):
        secret = tmp_path / "secret.txt"
        secret.write_text("TOPSECRET-pe")
        data = (f"<!DOCTYPE domain [<!ENTITY % p SYSTEM '{secret}'> %p;]><domain><name>vm1</name></domain>").encode()
        with pytest.raises(DomainXmlError) as info:
            parse(data)
        assert "TOPSECRET" not in str(info.value)

    def test_billion_laughs(self):
        lol = ['<!ENTITY lol "lol">']
        for i in range(1, 10):
            prev = f"&lol{i - 1 if i > 1 else ''};"
            lol.append(f'<!ENTITY lol{i} "{prev * 10}">')
        data = (
            "<?xml version='1.0'?><!DOCTYPE domain [" + "".join(lol) + "]><domain><name>&lol9;</name></domain>"
        ).encode()
        with pytest.raises(DomainXmlError):
            parse(data)

    def test_oversize(self):
        pad = b"<!--" + b"x" * MAX_XML_BYTES + b"-->"
        with pytest.raises(DomainXmlError, match="larger than"):
            parse(domain("") + pad)

    def test_exactly_the_limit_is_parsed(self):
        filler = MAX_XML_BYTES - len(domain("<description></description>"))
        data = domain("<description>" + "x" * filler + "</description>")
        assert len(data) == MAX_XML_BYTES
        assert parse(data).name == "vm1"

    def test_deep_nesting_is_refused_not_a_crash(self):
        depth = 300_000
        data = b"<domain><name>vm1</name>" + b"<a>" * depth + b"</a>" * depth + b"</domain>"
        assert len(data) <= MAX_XML_BYTES
        with pytest.raises(DomainXmlError):
            parse(data)
