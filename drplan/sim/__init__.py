"""The simulated estate: an ARM-compatible Site Recovery endpoint over HTTPS, a simulated on-prem vCenter,
a simulated clock, fault injection and an audit log. See ``docs/estate.md``.

    from drplan.sim import Estate, start_simulator

    with start_simulator(Estate.from_yaml("estate.yaml"), speed=6000) as sim:
        client = SiteRecoveryManagementClient(StaticTokenCredential(sim.token), sim.subscription_id,
                                              base_url=sim.endpoint, connection_verify=sim.ca_file)
"""

from drplan.sim.clock import SimClock
from drplan.sim.estate import Estate, EstateError
from drplan.sim.onprem import SimulatedSite
from drplan.sim.simulator import Simulator, start_simulator

__all__ = ["Estate", "EstateError", "SimClock", "SimulatedSite", "Simulator", "start_simulator"]
