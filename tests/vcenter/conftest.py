"""A session-wide vcsim with 500+ VMs, named VMs and a drill port group; a fresh VCenterSite per test."""

from __future__ import annotations

import os

import pytest

from .vcsim_server import Vcsim, VcsimUnavailable, build_vcsim, running_vcsim

NAMED_VMS = ("web-01", "app-01", "db-01", "boot-01", "boot-02", "boot-03", "mt-win-01", "mt-lnx-01")
DRILL_PORT_GROUP = "drill-net"
BATCH_VMS = 500


def vcsim_binary():
    """Build vcsim, or skip (outside CI only) with the reason."""
    try:
        return build_vcsim()
    except VcsimUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"vcsim is required in CI: {exc}")
        pytest.skip(f"vcsim unavailable: {exc}")


@pytest.fixture(scope="session")
def vcsim_bin():
    return vcsim_binary()


@pytest.fixture(scope="session")
def vcsim(vcsim_bin, tmp_path_factory) -> Vcsim:
    with running_vcsim(
        tmp_path_factory.mktemp("vcsim"),
        vms=BATCH_VMS + 20,
        names=NAMED_VMS,
        portgroups=(DRILL_PORT_GROUP,),
        binary=vcsim_bin,
    ) as sim:
        yield sim


@pytest.fixture
def site(vcsim):
    s = vcsim.site()
    yield s
    s.close()
