"""vmha.ocf.utilization: the one write-on-change rule both agents publish utilization by."""

from __future__ import annotations

from vmha.ocf.runner import CommandTimedOut
from vmha.ocf.utilization import remembered, sync


class Cib:
    def __init__(self, held=None, *, read_fails=False, fail_on=None):
        self.held = dict(held or {})
        self.reads = 0
        self.writes = []
        self.read_fails = read_fails
        self.fail_on = fail_on

    def read(self):
        self.reads += 1
        if self.read_fails:
            raise CommandTimedOut("cibadmin did not finish within 5.0s")
        return dict(self.held)

    def write(self, key, value):
        if key == self.fail_on:
            raise CommandTimedOut(f"crm_resource {key} did not finish within 5.0s")
        self.writes.append((key, value))
        if value is None:
            self.held.pop(key, None)
        else:
            self.held[key] = value


def test_nothing_remembered_reads_once_and_writes_only_what_differs():
    cib = Cib({"cpu": "2", "hv_memory": "512"})
    done = sync({"cpu": "2", "hv_memory": "1024", "host_memory": "1024"}, None, cib.read, cib.write)
    assert cib.reads == 1
    assert cib.writes == [("hv_memory", "1024"), ("host_memory", "1024")]
    assert done.known == {"cpu": "2", "hv_memory": "1024", "host_memory": "1024"}
    assert done.wrote == ["hv_memory=1024", "host_memory=1024"]


def test_remembered_values_are_trusted_no_read():
    cib = Cib()
    done = sync({"cpu": "4"}, {"cpu": "2"}, cib.read, cib.write)
    assert cib.reads == 0 and cib.writes == [("cpu", "4")] and done.known == {"cpu": "4"}
    again = sync({"cpu": "4"}, done.known, cib.read, cib.write)
    assert again.wrote == [] and cib.writes == [("cpu", "4")]


def test_deletes_alone_need_no_read_and_an_absent_value_is_not_deleted_twice():
    cib = Cib({"cpu": "2"})
    done = sync({"cpu": None}, None, cib.read, cib.write)
    assert cib.reads == 0 and cib.writes == [("cpu", None)] and done.known == {}
    again = sync({"cpu": None}, done.known, cib.read, cib.write)
    assert again.wrote == [] and len(cib.writes) == 1


def test_an_unreadable_cib_means_every_value_is_written():
    cib = Cib({"cpu": "2"}, read_fails=True)
    done = sync({"cpu": "2", "hv_memory": "1024"}, None, cib.read, cib.write)
    assert done.read_error is not None
    assert cib.writes == [("cpu", "2"), ("hv_memory", "1024")]


def test_a_failed_write_stops_there_and_is_not_remembered():
    cib = Cib(fail_on="hv_memory")
    done = sync({"cpu": "2", "hv_memory": "1024", "host_memory": "1024"}, {}, cib.read, cib.write)
    assert done.write_error is not None
    assert cib.writes == [("cpu", "2")]  # host_memory not tried after the failure
    assert done.known == {"cpu": "2"}  # hv_memory will be written again


def test_old_state_files_kept_a_deleted_value_as_empty():
    assert remembered({"cpu": "2", "hv_memory": ""}) == {"cpu": "2"}
    assert remembered({}) == {}
    assert remembered(None) is None and remembered("garbage") is None
    assert remembered({"cpu": 16}) == {"cpu": "16"}  # HypervisorHealth kept integers


def test_unchanged_means_nothing_to_run():
    from vmha.ocf.utilization import unchanged

    assert unchanged({"cpu": "2", "hv_memory": None}, {"cpu": "2"})
    assert not unchanged({"cpu": "2"}, {"cpu": "4"})
    assert not unchanged({"cpu": None}, {"cpu": "2"})
    assert not unchanged({"cpu": "2"}, None)
