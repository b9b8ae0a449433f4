from __future__ import annotations

import pytest
from vmha.ocf.cluster import ClusterCommandFailed, ClusterNode, ClusterTools
from vmha.ocf.runner import CommandError, CommandTimedOut

SET_CPU = ["crm_resource", "--resource", "vm1", "--utilization", "--set-parameter", "cpu", "--parameter-value", "4"]
DEL_CPU = ["crm_resource", "--resource", "vm1", "--utilization", "--delete-parameter", "cpu"]


def test_set_utilization(scripted_runner):
    scripted_runner.expect(SET_CPU)
    ClusterTools(scripted_runner).set_utilization("vm1", "cpu", "4", timeout=7.5)
    assert [(c.argv, c.timeout) for c in scripted_runner.calls] == [(tuple(SET_CPU), 7.5)]


def test_set_utilization_failure_carries_the_last_stderr_line(scripted_runner):
    scripted_runner.expect(SET_CPU, rc=105, stderr="warning: x\nerror: Resource 'vm1' not found\n")
    with pytest.raises(ClusterCommandFailed) as info:
        ClusterTools(scripted_runner).set_utilization("vm1", "cpu", "4", timeout=5)
    assert str(info.value) == "crm_resource failed (rc 105): error: Resource 'vm1' not found"
    assert isinstance(info.value, CommandError)


def test_failure_without_output(scripted_runner):
    scripted_runner.expect(SET_CPU, rc=1)
    with pytest.raises(ClusterCommandFailed, match="no output"):
        ClusterTools(scripted_runner).set_utilization("vm1", "cpu", "4", timeout=5)


@pytest.mark.parametrize("rc", [0, 105])
def test_delete_utilization_tolerates_already_gone(scripted_runner, rc):
    scripted_runner.expect(DEL_CPU, rc=rc, stderr="" if rc == 0 else "No such object")
    ClusterTools(scripted_runner).delete_utilization("vm1", "cpu", timeout=5)


@pytest.mark.parametrize("rc", [1, 102, 106])
def test_delete_utilization_other_failures_raise(scripted_runner, rc):
    scripted_runner.expect(DEL_CPU, rc=rc, stderr="boom")
    with pytest.raises(ClusterCommandFailed, match=f"rc {rc}"):
        ClusterTools(scripted_runner).delete_utilization("vm1", "cpu", timeout=5)


def test_runner_errors_pass_through(scripted_runner):
    scripted_runner.expect(SET_CPU, raises=CommandTimedOut("crm_resource did not finish within 5.0s"))
    with pytest.raises(CommandTimedOut):
        ClusterTools(scripted_runner).set_utilization("vm1", "cpu", "4", timeout=5)


def test_local_node(scripted_runner):
    scripted_runner.expect(["crm_node", "--name"], stdout="ha1\n")
    assert ClusterTools(scripted_runner).local_node(timeout=5) == "ha1"


def test_nodes_parsing(scripted_runner):
    scripted_runner.expect(
        ["crm_node", "--list"],
        stdout="1 ha1 member\n2 ha2 lost\n\n3 ha3\ngarbage\n",
    )
    assert ClusterTools(scripted_runner).nodes(timeout=5) == [
        ClusterNode("1", "ha1", "member"),
        ClusterNode("2", "ha2", "lost"),
        ClusterNode("3", "ha3", ""),
    ]


def test_nodes_failure(scripted_runner):
    scripted_runner.expect(["crm_node", "--list"], rc=102, stderr="error: Could not connect to cluster")
    with pytest.raises(ClusterCommandFailed, match="crm_node failed"):
        ClusterTools(scripted_runner).nodes(timeout=5)


def test_set_node_attribute(scripted_runner):
    scripted_runner.expect(["attrd_updater", "--name", "#health-vmha", "--update", "red"])
    ClusterTools(scripted_runner).set_node_attribute("#health-vmha", "red", timeout=5)


def test_value_with_shell_metacharacters_is_one_argument(scripted_runner):
    argv = [
        "crm_resource",
        "--resource",
        "vm1",
        "--utilization",
        "--set-parameter",
        "cpu",
        "--parameter-value",
        "4; rm -rf /",
    ]
    scripted_runner.expect(argv)
    ClusterTools(scripted_runner).set_utilization("vm1", "cpu", "4; rm -rf /", timeout=5)


def test_scripted_runner_refuses_an_unexpected_argv():
    from tests.fakes.runner import FakeRunner

    runner = FakeRunner()
    runner.expect(["crm_node", "--name"])
    with pytest.raises(pytest.fail.Exception, match="unexpected command"):
        ClusterTools(runner).nodes(timeout=5)
    with pytest.raises(AssertionError, match="unexpected commands ran"):
        runner.assert_done()


TOP = ["cibadmin", "--query", "--xpath", "//primitive[@id='hh']/ancestor-or-self::*[parent::resources]"]


def test_top_level_meta_reads_the_clone_not_the_primitive(scripted_runner):
    tools = ClusterTools(scripted_runner)
    clone = (
        '<clone id="c"><meta_attributes id="m"><nvpair id="n" name="allow-unhealthy-nodes" value="true"/>'
        '</meta_attributes><primitive id="hh"/></clone>'
    )
    scripted_runner.expect(TOP, stdout=clone)
    assert tools.top_level_meta("hh", "allow-unhealthy-nodes", timeout=5) == "true"
    inner = (
        '<clone id="c"><primitive id="hh"><meta_attributes id="m"><nvpair id="n" '
        'name="allow-unhealthy-nodes" value="true"/></meta_attributes></primitive></clone>'
    )
    scripted_runner.expect(TOP, stdout=inner)
    assert tools.top_level_meta("hh", "allow-unhealthy-nodes", timeout=5) is None
    scripted_runner.expect(TOP, rc=105, stderr="No such device or address")
    assert tools.top_level_meta("hh", "allow-unhealthy-nodes", timeout=5) is None
    scripted_runner.expect(TOP, rc=102, stderr="Could not connect to the CIB")
    with pytest.raises(ClusterCommandFailed, match="rc 102"):
        tools.top_level_meta("hh", "allow-unhealthy-nodes", timeout=5)
