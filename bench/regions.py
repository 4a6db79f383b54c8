"""Region routing: decisions per second over 10,000 client addresses, beside a bare geoip2 lookup.

A routing decision is what the edge does per request: place the address (the CIDR table, then the
GeoLite2 database through geoip2) and pick the nearest healthy region by great-circle distance. The
peer is the lookup alone: ``geoip2.database.Reader.city`` on the same file and the same addresses.
Reported in one run, in alternating rounds (the median and the range of per-round ratios): cold
(the LRU of placed addresses turned off, so every decision does a database lookup) and warm (every
address seen before, the edge's steady state), each as a ratio to the bare lookup; the goal
is cold / bare >= 0.5.

    .venv/bin/python -m bench.regions [--clients 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import time
from collections.abc import Callable, Sequence

import geoip2.database
import geoip2.errors

from bench.report import write_result
from photostore.regions.geo import GeoLocator, packaged_database
from photostore.regions.router import RegionRouter
from photostore.settings import GeoSettings, HealthSettings, RegionSettings, RegionsSettings

REGIONS = RegionsSettings(
    regions=(
        RegionSettings(name="us-west-2", lat=45.52, lon=-122.68, role="primary", api_endpoints=("http://a",)),
        RegionSettings(name="eu-west-1", lat=53.35, lon=-6.26, api_endpoints=("http://b",)),
        RegionSettings(name="ap-southeast-1", lat=1.29, lon=103.85, api_endpoints=("http://c",)),
    )
)


def client_addresses(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct public IPv4 addresses, drawn uniformly from the unicast space."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        address = ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))
        if address.is_global:
            found.add(str(address))
    return sorted(found)


def _rate(work: Callable[[str], object], addresses: Sequence[str]) -> float:
    gc.collect()
    start = time.perf_counter()
    for address in addresses:
        work(address)
    return len(addresses) / (time.perf_counter() - start)


def _alternating(
    contenders: dict[str, Callable[[str], object]], addresses: Sequence[str], runs: int
) -> dict[str, list[float]]:
    """Each contender once per round, round after round, so drift on a shared machine hits all alike."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, work in contenders.items():
            rates[name].append(_rate(work, addresses))
    return rates


def run(clients: int, runs: int) -> str:
    addresses = client_addresses(clients)
    reader = geoip2.database.Reader(str(packaged_database()))

    def bare(address: str) -> object:
        try:
            return reader.city(address).location
        except geoip2.errors.AddressNotFoundError:
            return None

    cold_router = RegionRouter(REGIONS, GeoLocator(GeoSettings(cache_entries=0)), HealthSettings())
    warm_router = RegionRouter(REGIONS, GeoLocator(GeoSettings(cache_entries=clients)), HealthSettings())
    for address in addresses:  # fill the warm router's LRU
        warm_router.route_address(address)

    rates = _alternating(
        {"bare": bare, "cold": cold_router.route_address, "warm": warm_router.route_address}, addresses, runs
    )
    bare_rate, cold_rate, warm_rate = (statistics.median(rates[name]) for name in ("bare", "cold", "warm"))
    cold_ratios = sorted(c / b for c, b in zip(rates["cold"], rates["bare"], strict=True))
    warm_ratios = sorted(w / b for w, b in zip(rates["warm"], rates["bare"], strict=True))
    placed = sum(
        1 for address in addresses if cold_router.route(cold_router.locator.locate(address)).location
    )
    shares: dict[str, int] = {}
    for address in addresses:
        name = cold_router.route_address(address).region.name
        shares[name] = shares.get(name, 0) + 1
    split = ", ".join(f"{name} {count / clients:.0%}" for name, count in sorted(shares.items()))
    rows = [
        ("client addresses (placed by GeoLite2)", f"{clients} ({placed / clients:.0%})", ""),
        ("bare geoip2 city() lookups / s", f"{bare_rate:,.0f}", ""),
        ("routing decisions / s, cold (no LRU)", f"{cold_rate:,.0f}", ""),
        ("routing decisions / s, warm (LRU)", f"{warm_rate:,.0f}", ""),
        (
            "cold decisions / bare lookups (median of rounds; range)",
            f"{statistics.median(cold_ratios):.2f} ({cold_ratios[0]:.2f}-{cold_ratios[-1]:.2f})",
            ">= 0.5",
        ),
        (
            "warm decisions / bare lookups (median of rounds; range)",
            f"{statistics.median(warm_ratios):.2f} ({warm_ratios[0]:.2f}-{warm_ratios[-1]:.2f})",
            "",
        ),
        ("clients per region", split, ""),
    ]
    lines = [f"| {figure} | {value} | {goal} |" for figure, value, goal in rows]
    return "\n".join(["| figure | value | goal |", "|---|---|---|", *lines])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    table = run(args.clients, args.runs)
    print(table)
    write_result("regions", table)
