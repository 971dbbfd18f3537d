"""Fleet health for technicians: a registry of every device's availability and status, a page and an API.

``fleet_router()`` is included by the queue server's app; see ``router.py`` and ``registry.py``.
"""
from queueserver.fleet.registry import DeviceHealth, FleetRegistry
from queueserver.fleet.router import fleet_router

__all__ = ["DeviceHealth", "FleetRegistry", "fleet_router"]
