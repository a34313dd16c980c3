"""The manager panel's sections: programme, rewards, customers, reports and devices.

Each is a blueprint under ``/panel/...`` (managers only, checked in ``web.auth`` by path) and is
listed in the panel's navigation (``web.nav``). The views translate HTTP to the services and back.
"""
from __future__ import annotations

from . import customers, devices, programme, reports, rewards

blueprints = (programme.bp, rewards.bp, customers.bp, reports.bp, devices.bp)
