"""vCenter going away mid-session (a separate vcsim, stopped by its PID)."""

from __future__ import annotations

import pytest

from drplan.errors import VCenterUnreachable
from drplan.recovery.site_checks import check_connected

from .vcsim_server import running_vcsim

pytestmark = pytest.mark.vcsim


def test_vcsim_stopped_mid_session(vcsim_bin, tmp_path):
    with running_vcsim(tmp_path, vms=2, names=["lonely-01"], binary=vcsim_bin) as sim:
        site = sim.site()
        assert check_connected(site.read_state(["lonely-01"]), site.where).ok
        sim.stop()

        state = site.read_state(["lonely-01"])
        check = check_connected(state, site.where)
        assert not state.connected and not check.ok
        assert check.message.startswith(f"vCenter 127.0.0.1:{sim.port} is not connected")
        assert isinstance(site.last_error, VCenterUnreachable)

        with pytest.raises(VCenterUnreachable) as err:
            site.power_on("lonely-01")
        assert str(err.value).startswith(f"powering on lonely-01 on vCenter 127.0.0.1:{sim.port}: ")
        site.close()  # never raises, even with vCenter gone
