"""A simulated CO monitor on a pseudo-terminal, driven by scenarios that are data."""

from devices.simulator.monitor import SimulatedMonitor, run_simulator
from devices.simulator.scenario import (
    FAST_SCALE,
    FAULT_PPM,
    Scenario,
    Step,
    Timings,
    Values,
    load_scenario,
)

__all__ = [
    "FAST_SCALE",
    "FAULT_PPM",
    "Scenario",
    "SimulatedMonitor",
    "Step",
    "Timings",
    "Values",
    "load_scenario",
    "run_simulator",
]
