from __future__ import annotations

import libvirt
import pytest
from vmha.ocf.params import parse_params
from vmha.virtual_machine import migration as m
from vmha.virtual_machine.params import PARAMS


def params(**values):
    env = {"OCF_RESKEY_config": "/etc/libvirt/vm1.xml"}
    env.update({f"OCF_RESKEY_{k}": str(v) for k, v in values.items()})
    parsed = parse_params(PARAMS, env)
    assert parsed.errors == () and parsed.unknown == (), (parsed.errors, parsed.unknown)
    return parsed.params


class TestFlagValues:
    """Our constants are libvirt's virDomainMigrateFlags; check them against the binding."""

    @pytest.mark.parametrize(
        ("ours", "theirs"),
        [
            ("LIVE", "VIR_MIGRATE_LIVE"),
            ("PEER2PEER", "VIR_MIGRATE_PEER2PEER"),
            ("TUNNELLED", "VIR_MIGRATE_TUNNELLED"),
            ("PERSIST_DEST", "VIR_MIGRATE_PERSIST_DEST"),
            ("UNDEFINE_SOURCE", "VIR_MIGRATE_UNDEFINE_SOURCE"),
            ("NON_SHARED_DISK", "VIR_MIGRATE_NON_SHARED_DISK"),
            ("NON_SHARED_INC", "VIR_MIGRATE_NON_SHARED_INC"),
            ("CHANGE_PROTECTION", "VIR_MIGRATE_CHANGE_PROTECTION"),
            ("UNSAFE", "VIR_MIGRATE_UNSAFE"),
            ("COMPRESSED", "VIR_MIGRATE_COMPRESSED"),
            ("ABORT_ON_ERROR", "VIR_MIGRATE_ABORT_ON_ERROR"),
            ("AUTO_CONVERGE", "VIR_MIGRATE_AUTO_CONVERGE"),
            ("POSTCOPY", "VIR_MIGRATE_POSTCOPY"),
            ("TLS", "VIR_MIGRATE_TLS"),
            ("PARALLEL", "VIR_MIGRATE_PARALLEL"),
        ],
    )
    def test_constant(self, ours, theirs):
        assert getattr(m, ours) == getattr(libvirt, theirs)


class TestParseMigrateOptions:
    @pytest.mark.parametrize(
        ("word", "flags"),
        [
            ("--live", libvirt.VIR_MIGRATE_LIVE),
            ("--p2p", libvirt.VIR_MIGRATE_PEER2PEER),
            ("--tunnelled", libvirt.VIR_MIGRATE_TUNNELLED | libvirt.VIR_MIGRATE_PEER2PEER),
            ("--copy-storage-all", libvirt.VIR_MIGRATE_NON_SHARED_DISK),
            ("--copy-storage-inc", libvirt.VIR_MIGRATE_NON_SHARED_INC),
            ("--change-protection", libvirt.VIR_MIGRATE_CHANGE_PROTECTION),
            ("--unsafe", libvirt.VIR_MIGRATE_UNSAFE),
            ("--compressed", libvirt.VIR_MIGRATE_COMPRESSED),
            ("--abort-on-error", libvirt.VIR_MIGRATE_ABORT_ON_ERROR),
            ("--auto-converge", libvirt.VIR_MIGRATE_AUTO_CONVERGE),
            ("--postcopy", libvirt.VIR_MIGRATE_POSTCOPY),
            ("--tls", libvirt.VIR_MIGRATE_TLS),
            ("--parallel", libvirt.VIR_MIGRATE_PARALLEL),
            ("--verbose", 0),
        ],
    )
    def test_each_flag(self, word, flags):
        assert m.parse_migrate_options(word) == m.MigrateOptions(flags=flags)

    def test_flags_combine(self):
        opts = m.parse_migrate_options("  --p2p   --compressed\t--unsafe ")
        assert opts.flags == m.PEER2PEER | m.COMPRESSED | m.UNSAFE

    def test_empty(self):
        assert m.parse_migrate_options("") == m.MigrateOptions()

    @pytest.mark.parametrize(
        "text",
        [
            "--migrateuri=tcp://ha2-mig:49152 --listen-address=10.0.0.2 --bandwidth=100 --parallel-connections=4",
            "--migrateuri tcp://ha2-mig:49152 --listen-address 10.0.0.2 --bandwidth 100 --parallel-connections 4",
            "--migrateuri 'tcp://ha2-mig:49152' --listen-address=\"10.0.0.2\" --bandwidth=100 --parallel-connections 4",
        ],
    )
    def test_value_options_with_equals_or_separate_word(self, text):
        assert m.parse_migrate_options(text) == m.MigrateOptions(
            migrateuri="tcp://ha2-mig:49152", listen_address="10.0.0.2", bandwidth=100, parallel_connections=4
        )

    def test_value_is_not_taken_as_an_option(self):
        opts = m.parse_migrate_options("--listen-address --p2p")
        assert opts.listen_address == "--p2p" and opts.flags == 0

    @pytest.mark.parametrize(
        "text",
        [
            "--desturi=qemu+ssh://x/system",
            "--xml=/tmp/evil.xml",
            "--live; rm -rf /",
            "rm",
            "-p",
            "--P2P",
            "#",
            "--live=1",
        ],
    )
    def test_unknown_option_refused(self, text):
        with pytest.raises(m.MigrationOptionError, match="is not supported"):
            m.parse_migrate_options(text)

    @pytest.mark.parametrize("text", ["--migrateuri='tcp://x", '--listen-address "10.0.0.2', "--p2p \\"])
    def test_bad_quoting_refused(self, text):
        with pytest.raises(m.MigrationOptionError, match="^migrate_options: "):
            m.parse_migrate_options(text)

    @pytest.mark.parametrize("text", ["--migrateuri", "--p2p --bandwidth"])
    def test_missing_value_refused(self, text):
        with pytest.raises(m.MigrationOptionError, match="needs a value"):
            m.parse_migrate_options(text)

    @pytest.mark.parametrize(
        "text", ["--bandwidth=fast", "--bandwidth=-1", "--parallel-connections=2.5", "--bandwidth="]
    )
    def test_numbers_checked(self, text):
        with pytest.raises(m.MigrationOptionError, match="needs a number"):
            m.parse_migrate_options(text)

    def test_unicode_digit_refused_cleanly(self):
        with pytest.raises(m.MigrationOptionError):
            m.parse_migrate_options("--bandwidth=\u00b2")


class TestTargetHost:
    @pytest.mark.parametrize(
        ("node", "suffix", "want"),
        [
            ("ha2", "-mig", "ha2-mig"),
            ("ha2.example.com", "-mig", "ha2-mig.example.com"),
            ("ha2.example.com", "", "ha2.example.com"),
            ("ha2", ".mig.lan", "ha2.mig.lan"),
        ],
    )
    def test_suffix_before_first_dot(self, node, suffix, want):
        assert m.target_host(node, suffix) == want


class TestRemoteUri:
    def uri(self, hypervisor="qemu:///system", node="ha2", *, transport="", user="", suffix="", template=""):
        return m.remote_uri(hypervisor, node, transport=transport, user=user, suffix=suffix, template=template)

    def test_plain(self):
        assert self.uri() == "qemu://ha2/system"

    def test_transport(self):
        assert self.uri(transport="ssh") == "qemu+ssh://ha2/system"

    def test_transport_replaces_the_local_one(self):
        assert self.uri("qemu+unix:///system", transport="tcp") == "qemu+tcp://ha2/system"

    def test_user_and_suffix(self):
        assert self.uri(node="ha2.example.com", transport="ssh", user="migrator", suffix="-mig") == (
            "qemu+ssh://migrator@ha2-mig.example.com/system"
        )

    def test_session_path_and_query_kept(self):
        assert self.uri("qemu:///session?socket=/run/x.sock", transport="ssh") == (
            "qemu+ssh://ha2/session?socket=/run/x.sock"
        )

    def test_empty_path_means_system(self):
        assert self.uri("qemu://", transport="tls") == "qemu+tls://ha2/system"

    def test_template_wins(self):
        got = self.uri(node="ha2", transport="ssh", user="u", suffix="-mig", template="qemu+tcp://%n-x:16510/system?%n")
        assert got == "qemu+tcp://ha2-x:16510/system?ha2"

    def test_port_kept_as_virtualdomain_does(self):
        assert self.uri("qemu://localhost:16510/system", transport="tcp") == "qemu+tcp://ha2:16510/system"


LIBVIRT_PARAM_NAMES = {
    "migrate_uri": libvirt.VIR_MIGRATE_PARAM_URI,
    "bandwidth": libvirt.VIR_MIGRATE_PARAM_BANDWIDTH,
    "listen_address": libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
    "parallel.connections": libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS,
}


class TestPlan:
    def test_defaults(self):
        plan = m.plan(params(), "ha2", persistent=False)
        assert plan.target == "ha2"
        assert plan.dest_uri == "qemu://ha2/system"
        assert plan.flags == m.LIVE
        assert plan.params == {}
        assert (plan.downtime_ms, plan.postcopy_after_s) == (0, 0)
        assert not plan.peer_to_peer

    def test_param_keys_are_libvirts(self):
        p = params(
            migrateuri="tcp://%n-mig",
            migration_speed=100,
            migrate_options="--listen-address=10.0.0.2 --parallel-connections=3",
        )
        plan = m.plan(p, "ha2", persistent=False)
        assert set(plan.params) == set(LIBVIRT_PARAM_NAMES)
        for key, name in LIBVIRT_PARAM_NAMES.items():
            assert key == name
        assert plan.params == {
            "migrate_uri": "tcp://ha2-mig",
            "bandwidth": 100,
            "listen_address": "10.0.0.2",
            "parallel.connections": 3,
        }

    def test_dest_uri_from_params(self):
        p = params(migration_transport="ssh", migration_user="root", migration_network_suffix="-mig")
        assert m.plan(p, "ha2.lan", persistent=False).dest_uri == "qemu+ssh://root@ha2-mig.lan/system"

    def test_dest_uri_from_template(self):
        p = params(remoteuri="qemu+tls://%n.mig/system", migration_transport="ssh")
        assert m.plan(p, "ha2", persistent=False).dest_uri == "qemu+tls://ha2.mig/system"

    def test_persistent(self):
        plan = m.plan(params(), "ha2", persistent=True)
        assert plan.flags == m.LIVE | m.PERSIST_DEST | m.UNDEFINE_SOURCE

    def test_auto_converge(self):
        assert m.plan(params(migration_auto_converge="true"), "ha2", persistent=False).flags == m.LIVE | m.AUTO_CONVERGE

    def test_postcopy(self):
        plan = m.plan(params(migration_postcopy="yes"), "ha2", persistent=False)
        assert plan.flags == m.LIVE | m.POSTCOPY
        assert plan.postcopy_after_s == 10  # the parameter's default
        plan = m.plan(params(migration_postcopy="yes", migration_postcopy_after=30), "ha2", persistent=False)
        assert plan.postcopy_after_s == 30

    def test_postcopy_after_ignored_without_postcopy(self):
        plan = m.plan(params(migration_postcopy_after=30), "ha2", persistent=False)
        assert plan.postcopy_after_s == 0 and not plan.flags & m.POSTCOPY

    def test_options_flags_added(self):
        plan = m.plan(params(migrate_options="--p2p --compressed"), "ha2", persistent=False)
        assert plan.flags == m.LIVE | m.PEER2PEER | m.COMPRESSED
        assert plan.peer_to_peer

    def test_downtime(self):
        assert m.plan(params(migration_downtime=300), "ha2", persistent=False).downtime_ms == 300

    # migrate_uri precedence: migrateuri param > --migrateuri option > suffix (+ migrateport)

    def test_migrateuri_param_wins(self):
        p = params(migrateuri="tcp://%n-a", migrate_options="--migrateuri=tcp://%n-b", migration_network_suffix="-c")
        assert m.plan(p, "ha2", persistent=False).params["migrate_uri"] == "tcp://ha2-a"

    def test_option_beats_suffix(self):
        p = params(migrate_options="--migrateuri=tcp://%n-b:4444", migration_network_suffix="-c")
        assert m.plan(p, "ha2", persistent=False).params["migrate_uri"] == "tcp://ha2-b:4444"

    def test_suffix_without_port_lets_libvirt_choose(self):
        p = params(migration_network_suffix="-mig")
        assert m.plan(p, "ha2.example.com", persistent=False).params["migrate_uri"] == "tcp://ha2-mig.example.com"

    def test_suffix_with_port(self):
        p = params(migration_network_suffix="-mig", migrateport=49152)
        assert m.plan(p, "ha2", persistent=False).params["migrate_uri"] == "tcp://ha2-mig:49152"

    def test_port_alone_builds_no_uri(self):
        assert "migrate_uri" not in m.plan(params(migrateport=49152), "ha2", persistent=False).params

    def test_suffix_on_a_non_qemu_hypervisor_builds_no_uri(self):
        p = params(hypervisor="xen:///system", migration_network_suffix="-mig")
        assert "migrate_uri" not in m.plan(p, "ha2", persistent=False).params

    @pytest.mark.parametrize("how", [{"migrate_options": "--tunnelled"}, {"migrate_options": "--p2p --tunnelled"}])
    def test_tunnelled_drops_migrate_uri(self, how):
        p = params(migrateuri="tcp://%n-mig", **how)
        plan = m.plan(p, "ha2", persistent=False)
        assert "migrate_uri" not in plan.params
        assert plan.flags & m.TUNNELLED and plan.peer_to_peer

    # bandwidth: migration_speed, else --bandwidth

    def test_bandwidth_from_migration_speed(self):
        assert m.plan(params(migration_speed=250), "ha2", persistent=False).params["bandwidth"] == 250

    def test_bandwidth_from_option(self):
        assert m.plan(params(migrate_options="--bandwidth 50"), "ha2", persistent=False).params["bandwidth"] == 50

    def test_migration_speed_beats_option(self):
        p = params(migration_speed=250, migrate_options="--bandwidth=50")
        assert m.plan(p, "ha2", persistent=False).params["bandwidth"] == 250

    def test_zero_speed_is_unlimited(self):
        assert "bandwidth" not in m.plan(params(migration_speed=0), "ha2", persistent=False).params

    def test_bad_options_raise(self):
        with pytest.raises(m.MigrationOptionError):
            m.plan(params(migrate_options="--desturi=x"), "ha2", persistent=False)


@pytest.mark.parametrize(
    ("values", "uri"),
    [
        ({}, None),
        ({"peer_check_uri": "qemu+ssh://root@%n/system"}, "qemu+ssh://root@ha2/system"),
        ({"remoteuri": "qemu+tls://%n.example/system"}, "qemu+tls://ha2.example/system"),
        ({"migration_transport": "ssh", "migration_user": "mig"}, "qemu+ssh://mig@ha2/system"),
        ({"migration_transport": "tcp", "migration_network_suffix": "-mig"}, "qemu+tcp://ha2-mig/system"),
        (
            {"peer_check_uri": "qemu+tcp://%n/system", "remoteuri": "qemu+ssh://%n/system"},
            "qemu+tcp://ha2/system",
        ),
    ],
)
def test_peer_uri_is_what_live_migration_uses_unless_named(values, uri):
    assert m.peer_uri(params(**values), "ha2") == uri
