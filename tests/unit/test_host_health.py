"""The pure decisions of HypervisorHealth: each check's colour, holds, and the rule that the
cluster never goes all red."""

from __future__ import annotations

import pytest
from vmha.verdicts import host_health as hh
from vmha.verdicts.host_health import (
    DomainMemory,
    Finding,
    Hold,
    Level,
    LinkState,
    MdArray,
    PeerView,
    PoolSpace,
    ThermalZone,
)

G, Y, R = Level.GREEN, Level.YELLOW, Level.RED
GIB = 1024 * 1024  # KiB


def levels(findings):
    return [f.level for f in findings]


# -- combining -------------------------------------------------------------------------------


def test_worst_wins_and_empty_is_green():
    assert hh.worst([]) is G
    assert hh.worst([hh.green("a"), Finding("b", Y, "y"), hh.green("c")]) is Y
    assert hh.worst([Finding("b", Y, "y"), Finding("c", R, "r")]) is R


def test_summary_lists_problems_worst_first():
    text = hh.summary([hh.green("a"), Finding("b", Y, "pool low"), Finding("c", R, "bridge down")])
    assert text == "red: bridge down; yellow: pool low"
    assert hh.summary([hh.green("a")]) == ""


def test_level_parse_and_colour():
    assert Level.parse(" Red\n") is R and Level.parse("green") is G
    assert Level.parse("") is None and Level.parse("100") is None
    assert [lv.colour for lv in Level] == ["green", "yellow", "red"]


# -- hypervisor ------------------------------------------------------------------------------


def test_hypervisor():
    assert hh.judge_hypervisor("qemu:///system", None).level is G
    down = hh.judge_hypervisor("qemu:///system", "connection refused")
    assert down.level is R and "qemu:///system" in down.reason and "connection refused" in down.reason
    assert hh.judge_hypervisor("qemu:///system", "x", Level.YELLOW).level is Y


# -- memory ----------------------------------------------------------------------------------


def test_memory_headroom_counts_balloon_growth():
    doms = [DomainMemory("a", 4 * GIB, 2 * GIB), DomainMemory("b", 2 * GIB, 2 * GIB)]
    # 8 GiB available, domains may grow by 2 GiB: 6 GiB left.
    assert hh.judge_memory(8 * GIB, doms, headroom_mib=6 * 1024).level is G
    low = hh.judge_memory(8 * GIB, doms, headroom_mib=6 * 1024 + 1)
    assert low.level is Y and "grow by 2048 MiB" in low.reason


def test_memory_current_above_max_is_no_negative_growth():
    doms = [DomainMemory("a", 1 * GIB, 2 * GIB)]  # hot-unplugged: current above the new max
    assert hh.judge_memory(1 * GIB, doms, headroom_mib=1024).level is G


def test_memory_red_only_below_its_own_threshold():
    assert hh.judge_memory(512 * 1024, [], headroom_mib=1024).level is Y
    assert hh.judge_memory(512 * 1024, [], headroom_mib=1024, red_mib=600).level is R
    assert hh.judge_memory(512 * 1024, [], headroom_mib=0, red_mib=0).level is G


def test_memory_unreadable_is_yellow():
    assert hh.judge_memory(None, [], headroom_mib=0).level is Y


# -- storage ---------------------------------------------------------------------------------

POOLS = [
    PoolSpace("vms", True, 1000, 500),
    PoolSpace("iso", False, 0, 0),
    PoolSpace("full", True, 1000, 50),
    PoolSpace("iscsi", True, 0, 0),
]


def test_all_pools_checks_active_ones_and_ignores_inactive():
    found = hh.judge_pools(POOLS, [], yellow_percent=10, red_percent=2)
    assert levels(found) == [Y] and "full" in found[0].reason and "5.0%" in found[0].reason


def test_all_pools_green():
    assert levels(hh.judge_pools(POOLS[:2], [], yellow_percent=10, red_percent=2)) == [G]


def test_named_pools_missing_or_inactive_are_red():
    found = hh.judge_pools(POOLS, ["vms", "iso", "lab"], yellow_percent=10, red_percent=2)
    assert levels(found) == [R, R]
    assert "iso is not active" in found[0].reason and "lab does not exist" in found[1].reason


def test_pool_thresholds():
    assert levels(hh.judge_pools(POOLS, ["full"], yellow_percent=10, red_percent=6)) == [R]
    assert levels(hh.judge_pools(POOLS, ["full"], yellow_percent=5, red_percent=0)) == [G]
    assert levels(hh.judge_pools(POOLS, ["iscsi"], yellow_percent=10, red_percent=2)) == [G]  # no size


def test_a_pool_whose_filesystem_hangs_is_red():
    hung = PoolSpace("nfs", True, 0, 0, "its filesystem /mnt/nfs does not answer within 5.0s")
    (found,) = hh.judge_pools([hung], [], yellow_percent=10, red_percent=2)
    assert found.level is R and "nfs: its filesystem /mnt/nfs does not answer" in found.reason


# -- the red claim ---------------------------------------------------------------------------

MEMBERS = [("ha1", True), ("ha2", True), ("ha3", False)]


def test_rival_claims_are_other_online_members_with_a_fresh_claim():
    claims = {"ha1": "1000.0", "ha2": "999.5", "ha3": "1000.0", "ha9": "1000.0"}
    assert hh.rival_claims("ha1", MEMBERS, claims, now=1000.0, stale_s=120) == ["ha2"]


def test_withdrawn_old_and_own_claims_are_not_rivals():
    assert hh.rival_claims("ha1", MEMBERS, {"ha1": "1000", "ha2": ""}, now=1000.0, stale_s=120) == []
    assert hh.rival_claims("ha1", MEMBERS, {"ha2": "800"}, now=1000.0, stale_s=120) == []
    assert hh.rival_claims("ha1", MEMBERS, {"ha2": "1100"}, now=1000.0, stale_s=120) == ["ha2"]  # skew


def test_a_claim_that_does_not_parse_counts():
    assert hh.rival_claims("ha1", MEMBERS, {"ha2": "soon"}, now=1000.0, stale_s=120) == ["ha2"]


# -- interfaces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "level"),
    [
        (LinkState("up", True), G),
        (LinkState("up", None), G),
        (LinkState("unknown", True), G),  # bridges and taps
        (LinkState("unknown", False), R),
        (LinkState("unknown", None), R),
        (LinkState("down", False), R),
        (LinkState("lowerlayerdown", False), R),
        (None, R),
    ],
)
def test_interfaces(link, level):
    found = hh.judge_interfaces({"br0": link})
    assert levels(found) == [level]
    if level is R:
        assert "br0" in found[0].reason


def test_interfaces_none_to_check_is_green():
    assert levels(hh.judge_interfaces({})) == [G]


# -- counters --------------------------------------------------------------------------------


def test_increases_baseline_growth_and_reset():
    assert hh.increases({}, {"mc0/ue": 5}) == {"mc0/ue": 0}  # first sight: baseline
    assert hh.increases({"mc0/ue": 5}, {"mc0/ue": 7}) == {"mc0/ue": 2}
    assert hh.increases({"mc0/ue": 7}, {"mc0/ue": 0}) == {"mc0/ue": 0}  # reset
    assert hh.increases({"gone": 1}, {}) == {}


def test_edac():
    assert levels(hh.judge_edac({"mc0/ue": 0, "mc0/ce": 3}, ce_threshold=10)) == [G]
    ue = hh.judge_edac({"mc0/ue": 1, "mc0/ce": 0}, ce_threshold=10)
    assert levels(ue) == [R] and ue[0].key == "edac/mc0/ue" and "mc0" in ue[0].reason
    ce = hh.judge_edac({"mc1/ce": 10}, ce_threshold=10)
    assert levels(ce) == [Y] and ce[0].key == "edac/mc1/ce"
    assert levels(hh.judge_edac({"mc1/ce": 1000}, ce_threshold=0)) == [G]  # ignored


def test_disk_errors():
    assert levels(hh.judge_disk_errors({"sda": 0})) == [G]
    found = hh.judge_disk_errors({"sda": 0, "sdb": 3})
    assert levels(found) == [Y] and found[0].key == "disk/sdb"


# -- thermal ---------------------------------------------------------------------------------

TRIPS = (("active", 50000), ("passive", 80000), ("hot", 95000), ("critical", 105000))


@pytest.mark.parametrize(
    ("temp", "level"),
    [(45000, G), (60000, G), (80000, Y), (96000, R), (110000, R)],
)
def test_thermal(temp, level):
    found = hh.judge_thermal([ThermalZone("thermal_zone0", "x86_pkg_temp", temp, TRIPS)])
    assert levels(found) == [level]


def test_thermal_ignores_unset_trip_points():
    zone = ThermalZone("thermal_zone1", "acpitz", 30000, (("critical", 0), ("passive", -273000)))
    assert levels(hh.judge_thermal([zone])) == [G]


def test_thermal_reason():
    found = hh.judge_thermal([ThermalZone("thermal_zone0", "acpitz", 106500, TRIPS)])
    assert "106.5 C" in found[0].reason and "critical" in found[0].reason


# -- md --------------------------------------------------------------------------------------


def test_md():
    assert levels(hh.judge_md([MdArray("md0", 0)])) == [G]
    assert levels(hh.judge_md([MdArray("md0", 0), MdArray("md1", 1)])) == [Y]
    assert levels(hh.judge_md([])) == [G]


# -- holds -----------------------------------------------------------------------------------


def test_hold_keeps_a_counter_finding_until_it_expires():
    ue = Finding("edac", R, "1 uncorrected memory error(s) on mc0", "edac/mc0/ue")
    found, holds = hh.apply_holds([ue], {}, now=100.0, hold_s=60.0)
    assert hh.worst(found) is R and holds["edac/mc0/ue"].until == 160.0
    # Next monitor: the counter did not grow, the finding is green, the hold keeps it red.
    found, holds = hh.apply_holds([hh.green("edac")], holds, now=130.0, hold_s=60.0)
    assert hh.worst(found) is R and "held for 30s more" in hh.summary(found)
    found, holds = hh.apply_holds([hh.green("edac")], holds, now=161.0, hold_s=60.0)
    assert hh.worst(found) is G and holds == {}


def test_hold_renewed_and_keeps_the_worse_level():
    holds = {"edac/mc0/ce": Hold(R, "old", 150.0)}
    ce = Finding("edac", Y, "12 corrected", "edac/mc0/ce")
    found, holds = hh.apply_holds([ce], holds, now=100.0, hold_s=60.0)
    assert holds["edac/mc0/ce"] == Hold(R, "12 corrected", 160.0)
    assert levels(found) == [R]


def test_hold_zero_does_not_hold():
    ue = Finding("edac", R, "ue", "edac/mc0/ue")
    found, holds = hh.apply_holds([ue], {}, now=100.0, hold_s=0.0)
    assert hh.worst(found) is R  # the increase itself still counts once
    found, holds = hh.apply_holds([hh.green("edac")], holds, now=100.5, hold_s=0.0)
    assert hh.worst(found) is G


def test_unkeyed_findings_pass_through_holds():
    pool = Finding("storage", Y, "pool low")
    found, holds = hh.apply_holds([pool], {}, now=1.0, hold_s=60.0)
    assert found == [pool] and holds == {}


# -- never a cluster-wide red ----------------------------------------------------------------


def peers(*rows):
    return [PeerView(*row) for row in rows]


def test_cap_only_applies_to_red():
    for level in (G, Y):
        assert hh.cap_red("ha1", level, None) == hh.Verdict(level, False, "")


def test_two_nodes_peer_green_allows_red():
    v = hh.cap_red("ha1", R, peers(("ha1", True, "red"), ("ha2", True, "green")))
    assert v.level is R and not v.capped and "ha2" in v.reason


@pytest.mark.parametrize("value", ["red", "yellow", None, "", "100", "GREEN!"])
def test_two_nodes_peer_not_green_caps(value):
    v = hh.cap_red("ha1", R, peers(("ha1", True, "green"), ("ha2", True, value)))
    assert v.level is Y and v.capped
    assert "no other node is green" in v.reason and "ha2" in v.reason


def test_two_nodes_peer_offline_caps_even_if_its_last_value_was_green():
    v = hh.cap_red("ha1", R, peers(("ha1", True, None), ("ha2", False, "green")))
    assert v.level is Y and v.capped and "ha2 offline" in v.reason


def test_two_nodes_both_red_at_once_step_back():
    # Each sees the other red (published in the same instant): both stay yellow.
    for local, other in (("ha1", "ha2"), ("ha2", "ha1")):
        v = hh.cap_red(local, R, peers((local, True, "red"), (other, True, "red")))
        assert v.level is Y


def test_a_red_node_stays_red_while_a_peer_is_yellow():
    """Its VMs are moving to (or already run on) the yellow node: stepping back would call
    them back or break their migrations half way."""
    view = peers(("ha1", True, "red"), ("ha2", True, "yellow"))
    assert hh.cap_red("ha1", R, view, staying=True).level is R
    assert hh.cap_red("ha1", R, view).level is Y  # but no node turns red onto a yellow one


@pytest.mark.parametrize("value", ["red", None, ""])
def test_a_red_node_steps_back_when_every_other_node_is_red_or_unknown(value):
    v = hh.cap_red("ha1", R, peers(("ha1", True, "red"), ("ha2", True, value)), staying=True)
    assert v.level is Y and "every other node is red or unknown" in v.reason
    v = hh.cap_red("ha1", R, peers(("ha1", True, "red"), ("ha2", False, "yellow")), staying=True)
    assert v.level is Y and "ha2 offline" in v.reason


def test_three_nodes_one_green_is_enough():
    view = peers(("ha1", True, "red"), ("ha2", True, "red"), ("ha3", True, "green"))
    assert hh.cap_red("ha1", R, view).level is R


def test_three_nodes_green_one_offline_and_other_yellow_caps():
    view = peers(("ha1", True, None), ("ha2", True, "yellow"), ("ha3", False, "green"))
    v = hh.cap_red("ha1", R, view)
    assert v.level is Y and "ha2 yellow" in v.reason and "ha3 offline" in v.reason


def test_three_nodes_unknown_attributes_are_not_refuges():
    view = peers(("ha1", True, None), ("ha2", True, None), ("ha3", True, None))
    v = hh.cap_red("ha1", R, view)
    assert v.level is Y and "ha2 unknown" in v.reason


def test_own_value_never_counts_as_a_refuge():
    v = hh.cap_red("ha1", R, peers(("ha1", True, "green")))
    assert v.level is Y and "no other node" in v.reason


def test_single_node_cluster_caps():
    assert hh.cap_red("ha1", R, []).level is Y


def test_unreadable_peers_cap():
    v = hh.cap_red("ha1", R, None, "crm_node failed (rc 102)")
    assert v.level is Y and v.capped and "rc 102" in v.reason


def test_merge_peers_ignores_non_members_and_empty_values():
    merged = hh.merge_peers(
        [("ha1", True), ("ha2", False), ("ha3", True)],
        {"ha1": "green", "ha2": "green", "ha3": "", "gone": "green"},
    )
    assert merged == [PeerView("ha1", True, "green"), PeerView("ha2", False, "green"), PeerView("ha3", True, None)]
    assert hh.cap_red("ha3", R, merged).level is R  # ha1 is online and green
    assert hh.cap_red("ha1", R, merged).level is Y  # ha2 offline, ha3 unknown


def test_shared_storage_that_fails_or_hangs_is_red_and_named():
    from vmha.verdicts.host_health import Level, judge_shared_storage

    found = judge_shared_storage({"/srv/a": "", "/srv/b": "does not answer within 5.0s"})
    assert [(f.check, f.level, f.reason) for f in found] == [
        ("shared-storage", Level.RED, "shared storage /srv/b does not answer within 5.0s")
    ]
    assert [f.level for f in judge_shared_storage({"/srv/a": ""})] == [Level.GREEN]
