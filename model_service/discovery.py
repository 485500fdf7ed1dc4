"""Zeroconf (mDNS) advertisement: `_midasheng._tcp` for the integration, `_wyoming._tcp` for ASR.

Advertising is best effort: a network without multicast (containers, some VPNs) must never
keep the service from starting, so every failure is logged as a warning and swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import ipaddress
import logging
import socket
from typing import Any

_LOGGER = logging.getLogger(__name__)

MIDASHENG_TYPE = "_midasheng._tcp.local."
WYOMING_TYPE = "_wyoming._tcp.local."
API_VERSION = 1
REGISTER_TIMEOUT = 10.0

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


def advertised_addresses(host: str, local_addresses: list[str]) -> list[str]:
    """Addresses to put in the records for a service bound to `host`.

    A wildcard bind is reachable on every local address except loopback; a specific
    address only on itself. A loopback bind answers [] (other machines could not connect,
    so nothing is advertised).
    """
    if host in _WILDCARDS:
        usable = []
        for address in local_addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
                usable.append(str(ip))
        return usable
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    return [] if ip.is_loopback else [str(ip)]


def local_addresses() -> list[str]:
    """Every address of every local interface (via ifaddr, which zeroconf depends on)."""
    import ifaddr

    return [
        ip.ip if isinstance(ip.ip, str) else ip.ip[0]
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
    ]


def build_service_infos(
    *,
    service_id: str,
    version: str,
    addresses: list[str],
    port: int | None,
    wyoming_port: int | None = None,
    server_name: str | None = None,
) -> list[Any]:
    """ServiceInfo records: `_midasheng._tcp` when `port` is given, `_wyoming._tcp` when `wyoming_port` is."""
    from zeroconf.asyncio import AsyncServiceInfo

    short = service_id[:8]
    server = server_name or f"midasheng-{short}.local."
    infos: list[Any] = []
    if port is not None:
        infos.append(
            AsyncServiceInfo(
                MIDASHENG_TYPE,
                f"MiDasheng Audio {short}.{MIDASHENG_TYPE}",
                port=port,
                parsed_addresses=addresses,
                properties={"id": service_id, "version": version, "api": str(API_VERSION)},
                server=server,
            )
        )
    if wyoming_port is not None:
        infos.append(
            AsyncServiceInfo(
                WYOMING_TYPE,
                f"midasheng-{short}.{WYOMING_TYPE}",
                port=wyoming_port,
                parsed_addresses=addresses,
                server=server,
            )
        )
    return infos


@dataclass
class Advertisement:
    """Registered records; `close` withdraws them."""

    zeroconf: Any
    infos: list[Any]

    async def close(self) -> None:
        """Unregister (sends goodbye packets) and stop the responder."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.zeroconf.async_unregister_all_services(), 5)
        with contextlib.suppress(Exception):
            await self.zeroconf.async_close()


async def advertise(
    *,
    service_id: str,
    version: str,
    host: str,
    port: int | None,
    wyoming_port: int | None = None,
) -> Advertisement | None:
    """Advertise the HTTP API (`port`) and/or Wyoming ASR (`wyoming_port`); None if nothing was.

    Never raises: a failure is a warning, and the service runs on without discovery.
    """
    if port is None and wyoming_port is None:
        return None
    try:
        addresses = advertised_addresses(host, await asyncio.to_thread(local_addresses))
        if not addresses:
            _LOGGER.info(
                "Not advertising over zeroconf: --host %s is loopback or not an IP address "
                "(bind to 0.0.0.0 or a LAN address to be discoverable)",
                host,
            )
            return None
        from zeroconf import InterfaceChoice
        from zeroconf.asyncio import AsyncZeroconf

        infos = build_service_infos(
            service_id=service_id,
            version=version,
            addresses=addresses,
            port=port,
            wyoming_port=wyoming_port,
            server_name=f"{socket.gethostname().split('.')[0] or 'midasheng'}.local.",
        )
        interfaces: Any = InterfaceChoice.All if host in _WILDCARDS else [host]
        zeroconf = AsyncZeroconf(interfaces=interfaces)
    except Exception as err:  # noqa: BLE001 - discovery is optional, whatever went wrong
        _LOGGER.warning("Zeroconf advertising is unavailable: %s", err)
        return None
    registered = Advertisement(zeroconf, [])
    for info in infos:
        try:
            # The first await schedules probing; the second waits until the name is ours.
            task = await zeroconf.async_register_service(info, allow_name_change=True)
            await asyncio.wait_for(task, REGISTER_TIMEOUT)
        except Exception as err:  # noqa: BLE001
            _LOGGER.warning("Cannot advertise %s over zeroconf: %s", info.type, err)
            continue
        registered.infos.append(info)
        _LOGGER.info("Advertised %s on %s port %s", info.name, ", ".join(addresses), info.port)
    if not registered.infos:
        await registered.close()
        return None
    return registered
