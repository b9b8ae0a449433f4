from __future__ import annotations

import pytest
from vmha.ocf.metadata import _default_text
from vmha.ocf.params import ParamError, ParamType, parse_params
from vmha.virt.domain import SHUTDOWN_MODES
from vmha.virtual_machine.params import PARAMS, RELOADABLE

BY_NAME = {p.name: p for p in PARAMS}
CONFIG = {"OCF_RESKEY_config": "/etc/libvirt/vm1.xml"}


def test_names_unique():
    assert len(BY_NAME) == len(PARAMS)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
def test_each_param_parses_its_own_default(param):
    assert param.parse(None) == param.default
    text = _default_text(param.default)
    if text:  # the default as pcs shows it must be accepted back, checks included
        assert param.parse(text) == param.default


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
def test_declaration_is_consistent(param):
    if param.type is ParamType.SELECT:
        assert param.default in param.options
    if param.type is ParamType.INTEGER and param.default is not None:
        assert param.minimum is None or param.default >= param.minimum
        assert param.maximum is None or param.default <= param.maximum
    if param.type is ParamType.BOOLEAN:
        assert isinstance(param.default, bool)
    assert param.shortdesc and param.longdesc


def test_only_config_needed():
    parsed = parse_params(PARAMS, CONFIG)
    assert parsed.errors == () and parsed.unknown == ()
    assert BY_NAME["config"].required
    assert [p.name for p in PARAMS if p.required] == ["config"]


def test_reloadable_set():
    assert "config" not in RELOADABLE and "hypervisor" not in RELOADABLE
    assert "force_stop" in RELOADABLE


def test_virtualdomain_parameter_names_present():
    # VirtualDomain's parameters, so an existing resource can switch agents unchanged.
    virtualdomain = {
        "config",
        "hypervisor",
        "force_stop",
        "migration_transport",
        "migration_user",
        "migration_downtime",
        "migration_speed",
        "migration_network_suffix",
        "migrateuri",
        "migrate_options",
        "monitor_scripts",
        "autoset_utilization_cpu",
        "autoset_utilization_hv_memory",
        "autoset_utilization_host_memory",
        "migrateport",
        "remoteuri",
        "save_config_on_stop",
        "sync_config_on_stop",
        "snapshot",
        "backingfile",
        "stateless",
        "copyindirs",
        "shutdown_mode",
        "start_resources",
        "unset_utilization_cpu",
        "unset_utilization_host_memory",
        "unset_utilization_hv_memory",
    }
    assert virtualdomain <= set(BY_NAME)


def refused(name, raw):
    with pytest.raises(ParamError, match=f"^parameter {name}: "):
        BY_NAME[name].parse(raw)


class TestPaths:
    @pytest.mark.parametrize("name", ["config", "snapshot", "backingfile"])
    @pytest.mark.parametrize("raw", ["vm1.xml", "./vm1.xml", "etc/vm1.xml", "~/vm1.xml", " /etc/vm1.xml"])
    def test_relative_path_refused(self, name, raw):
        refused(name, raw)

    @pytest.mark.parametrize("raw", ["/etc/vm1\n.xml", "/etc/vm1\0.xml"])
    def test_control_characters_refused(self, raw):
        refused("config", raw)

    def test_absolute_path_accepted(self):
        assert BY_NAME["config"].parse("/etc/libvirt/qemu/vm 1.xml") == "/etc/libvirt/qemu/vm 1.xml"

    def test_monitor_scripts(self):
        assert (
            BY_NAME["monitor_scripts"].parse("/usr/local/bin/a  /usr/local/bin/b")
            == "/usr/local/bin/a  /usr/local/bin/b"
        )
        refused("monitor_scripts", "/usr/local/bin/a check.sh")


class TestShutdownMode:
    @pytest.mark.parametrize("raw", ["acpi", "agent", "acpi,agent", " acpi , agent ", ",".join(SHUTDOWN_MODES)])
    def test_valid(self, raw):
        assert BY_NAME["shutdown_mode"].parse(raw) == raw

    @pytest.mark.parametrize("raw", ["ACPI", "acpi,bogus", "acpi agent", "poweroff"])
    def test_invalid(self, raw):
        refused("shutdown_mode", raw)

    def test_reason_lists_the_bad_mode(self):
        with pytest.raises(ParamError, match="unknown mode.*bogus"):
            BY_NAME["shutdown_mode"].parse("acpi,bogus")


class TestMigrationUser:
    @pytest.mark.parametrize("raw", ["root", "migrator", "_svc", "mig-user1"])
    def test_valid(self, raw):
        assert BY_NAME["migration_user"].parse(raw) == raw

    @pytest.mark.parametrize("raw", ["Root", "-x", "1user", "a b", "a;b", "a@b", "user\n"])
    def test_invalid(self, raw):
        refused("migration_user", raw)


class TestUris:
    @pytest.mark.parametrize("raw", ["qemu:///system", "qemu+ssh://ha2/system", "test:///default", "xen:"])
    def test_valid_hypervisor(self, raw):
        assert BY_NAME["hypervisor"].parse(raw) == raw

    @pytest.mark.parametrize("raw", ["qemu:///system --readonly", "qemu:///system\n", "\tqemu:///system", "system"])
    def test_invalid_hypervisor(self, raw):
        refused("hypervisor", raw)

    @pytest.mark.parametrize("raw", ["ssh", "tcp", "tls", "libssh2"])
    def test_transport_valid(self, raw):
        assert BY_NAME["migration_transport"].parse(raw) == raw

    @pytest.mark.parametrize("raw", ["ssh;id", "SSH", "+ssh", "ssh tcp"])
    def test_transport_invalid(self, raw):
        refused("migration_transport", raw)

    @pytest.mark.parametrize("raw", ["-mig", ".mig.lan", "mig1"])
    def test_suffix_valid(self, raw):
        assert BY_NAME["migration_network_suffix"].parse(raw) == raw

    @pytest.mark.parametrize("raw", ["-mig/x", "-mig:22", "@evil", " -mig"])
    def test_suffix_invalid(self, raw):
        refused("migration_network_suffix", raw)


class TestNumbers:
    def test_migrateport_bounds(self):
        assert BY_NAME["migrateport"].parse("65535") == 65535
        refused("migrateport", "65536")
        refused("migrateport", "-1")

    @pytest.mark.parametrize(
        ("name", "raw"),
        [
            ("migration_postcopy_after", "0"),
            ("peer_check_timeout", "0"),
            ("shutdown_timeout", "-5"),
            ("migration_speed", "fast"),
        ],
    )
    def test_bounds(self, name, raw):
        refused(name, raw)


def test_on_io_error_select():
    assert BY_NAME["on_io_error"].parse("degraded") == "degraded"
    refused("on_io_error", "ignore")


def test_copyindirs_is_unsupported():
    assert BY_NAME["copyindirs"].unsupported
