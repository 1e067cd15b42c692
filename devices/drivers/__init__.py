"""Monitor drivers: one file per maker's protocol, each a ``MonitorDriver`` over a transport."""

from devices.drivers.base import DriverFactory, Event, MonitorDriver
from devices.drivers.reference import ReferenceDriver

__all__ = ["DriverFactory", "Event", "MonitorDriver", "ReferenceDriver"]
