"""Batched reads against vcsim: by name, 500 VMs in one property-collector call, port groups, datastores."""

from __future__ import annotations

import pytest

from drplan.recovery.site_checks import check_port_group, check_vm_present

from .conftest import BATCH_VMS, DRILL_PORT_GROUP

pytestmark = pytest.mark.vcsim


def test_finds_vms_by_name(site):
    state = site.read_state(["web-01", "db-01", "mt-win-01", "no-such-vm"])
    assert state.connected
    assert [n for n, v in state.vms.items() if v.present] == ["web-01", "db-01", "mt-win-01"]
    web = state.vms["web-01"]
    assert web.power_state == "poweredOff" and web.instance_uuid and not web.has_snapshots
    assert state.vms["no-such-vm"] == state.vms["no-such-vm"].__class__(name="no-such-vm", present=False)
    assert check_vm_present(state, "db-01").ok
    missing = check_vm_present(state, "no-such-vm")
    assert not missing.ok and missing.message == "target VM no-such-vm not found in vCenter"


def test_500_vms_cost_one_property_collector_round_trip(site, vcsim):
    names = vcsim.vms[:BATCH_VMS]
    assert len(names) == BATCH_VMS
    before = site.calls.copy()
    state = site.read_state(names, port_groups=[DRILL_PORT_GROUP], datastores=["LocalDS_0"])
    calls = site.calls - before
    assert calls == {"CreateContainerView": 1, "RetrievePropertiesEx": 1, "DestroyView": 1}
    assert all(v.present for v in state.vms.values()) and len(state.vms) == BATCH_VMS
    assert len({v.instance_uuid for v in state.vms.values()}) == BATCH_VMS

    before = site.calls.copy()
    site.read_state(names[:1])
    assert site.calls - before == calls  # one VM or 500: the same three calls


def test_drill_port_group_present_and_absent(site):
    state = site.read_state([], port_groups=[DRILL_PORT_GROUP, "no-such-net"])
    assert check_port_group(state, DRILL_PORT_GROUP).ok
    absent = check_port_group(state, "no-such-net")
    assert not absent.ok and "no-such-net" in absent.message


def test_datastore_free_space(site):
    state = site.read_state([], datastores=["LocalDS_0", "no-such-ds"])
    assert state.datastore_free_bytes["LocalDS_0"] > 0
    assert "no-such-ds" not in state.datastore_free_bytes
