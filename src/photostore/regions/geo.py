"""Where a client is: its address (behind trusted proxies only), then a place for that address.

Addresses are placed by the hand-made CIDR table in settings first (private networks, corrections),
then by a MaxMind City database read with ``geoip2``. With no database configured, the GeoLite2 file
that the ``maxminddb-geolite2`` package ships is used, so a fresh machine routes with no download
(its data is from 2018: production should point ``geo.database`` at a current file).
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from pathlib import Path

import geoip2.database
import geoip2.errors
import maxminddb
from starlette.datastructures import Headers
from starlette.requests import Request

from photostore.errors import ConfigError
from photostore.regions.geometry import GeoPoint
from photostore.settings import GeoSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def packaged_database() -> Path:
    """The GeoLite2-City file inside the ``maxminddb-geolite2`` package."""
    import _maxminddb_geolite2  # a data-only package

    return Path(_maxminddb_geolite2.__file__).parent / "GeoLite2-City.mmdb"


def parse_networks(blocks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(block, strict=False) for block in blocks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; they are IPv4 clients.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for(headers: Headers) -> str | None:
    """Every ``X-Forwarded-For`` line as one list: repeated lines mean the same as one joined line."""
    lines = headers.getlist("x-forwarded-for")
    return ", ".join(lines) if lines else None


def request_client(request: Request, trusted: tuple[Network, ...]) -> str | None:
    """The client address of a request, through trusted proxies only."""
    peer = request.client.host if request.client else None
    return client_address(peer, forwarded_for(request.headers), trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The client's address: ``X-Forwarded-For`` is read right to left, and only through trusted hops.

    Each proxy appends the address it saw, so the rightmost entry not added by a trusted proxy is the
    client; anything left of it was written by the client itself and proves nothing.
    """
    address = _address(peer) if peer else None
    if address is None or not forwarded_for or not any(address in net for net in trusted):
        return str(address) if address is not None else None
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _address(hop)
        if hop_address is None:
            break  # garbage written by someone untrusted: the last trusted hop is all we know
        address = hop_address
        if not any(address in net for net in trusted):
            break
    return str(address)


class GeoLocator:
    """Address -> GeoPoint; the CIDR table first, then the database; results remembered in an LRU."""

    def __init__(self, settings: GeoSettings) -> None:
        path = settings.database or packaged_database()
        if not path.is_file():
            raise ConfigError(f"geo.database {path} does not exist: give a MaxMind City .mmdb file")
        try:
            self._reader = geoip2.database.Reader(str(path))
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise ConfigError(f"geo.database {path} is not a MaxMind database: {exc}") from None
        # Longest prefix first, so a /24 correction wins over the /8 around it.
        placed = [
            (ipaddress.ip_network(n.cidr, strict=False), GeoPoint(n.lat, n.lon)) for n in settings.networks
        ]
        self._networks = sorted(placed, key=lambda item: item[0].prefixlen, reverse=True)
        self._cache: OrderedDict[str, GeoPoint | None] = OrderedDict()
        self._cache_entries = settings.cache_entries
        self._lock = threading.Lock()

    def locate(self, address: str | None) -> GeoPoint | None:
        """Where ``address`` is, or None when neither the table nor the database knows it."""
        if address is None:
            return None
        if self._cache_entries:
            with self._lock:
                if address in self._cache:
                    self._cache.move_to_end(address)
                    return self._cache[address]
        point = self._lookup(address)
        if self._cache_entries:
            with self._lock:
                self._cache[address] = point
                if len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
        return point

    def _lookup(self, text: str) -> GeoPoint | None:
        # Parsed strictly here: the database's own parser takes shorthand like "1.2.3" (1.2.0.3).
        address = _address(text)
        if address is None:
            return None
        for network, point in self._networks:
            if address in network:
                return point
        return self.database_point(address)  # private and loopback addresses are not in it

    def database_point(self, address: Address | str) -> GeoPoint | None:
        """A bare geoip2 lookup: no table, no cache (also the baseline the router is measured against)."""
        try:
            location = self._reader.city(address).location
        except (geoip2.errors.AddressNotFoundError, ValueError):  # ValueError: not an address
            return None
        if location.latitude is None or location.longitude is None:
            return None
        return GeoPoint(location.latitude, location.longitude)

    def close(self) -> None:
        self._reader.close()
