"""The money of ``photostore cost optimize``: each recommendation kind, priced to the cent by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from photostore.domain import AccessBand
from photostore.errors import BadRequest
from photostore.ops.cost import (
    EgressProfile,
    ServiceUtilisation,
    StorageProfile,
    cdn_offload,
    check_pricing,
    combine,
    monthly_egress_gb,
    process_month,
    replicas_for,
    right_size,
    tier_storage,
)
from photostore.ops.fleet import DEFAULT_PRICING, FleetAssumptions, Pricing, load_pricing

# Round prices, so every expected figure below can be checked by hand: a process (one core of 16)
# costs 1.6 / 16 = 0.1 an hour, 73 a month.
PRICES = Pricing(
    server_hour=1.6,
    cores_per_server=16,
    storage_gb_month={"hot": 0.02, "warm": 0.01, "cold": 0.004},
    egress_gb=0.05,
    cdn_gb=0.02,
)
ASSUME = FleetAssumptions()  # redundancy: hot 3, warm 1.5, cold 1.25
GB = 10**9


def test_a_process_costs_its_core_share_of_a_server() -> None:
    assert process_month(PRICES) == pytest.approx(73.0)
    assert process_month(load_pricing(DEFAULT_PRICING)) == pytest.approx(0.68 / 16 * 730)


@pytest.mark.parametrize(
    ("replicas", "cpu", "target", "expected"),
    [
        (4, 0.3, 0.6, 2),  # exactly 2.0, however the floats round
        (4, 0.31, 0.6, 3),
        (2, 0.9, 0.6, 3),
        (3, 0.0, 0.6, 1),  # idle: never below one
        (1, 1.8, 0.6, 3),  # a process busy on several threads counts its cores
    ],
)
def test_replicas_carry_todays_busy_cores_at_the_target(
    replicas: int, cpu: float, target: float, expected: int
) -> None:
    assert replicas_for(replicas, cpu, target) == expected


def test_right_sizing_saves_on_idle_services_and_shows_the_under_provisioned_one() -> None:
    services = [
        ServiceUtilisation("worker", replicas=2, cpu=0.9),
        ServiceUtilisation("api", replicas=4, cpu=0.15),
        ServiceUtilisation("relay", replicas=1, cpu=0.05),
    ]
    section = right_size(services, target_cpu=0.6, pricing=PRICES)
    by_service = {rec.subject: rec for rec in section.recommendations}
    assert [rec.subject for rec in section.recommendations] == ["api", "relay", "worker"]
    api, relay, worker = by_service["api"], by_service["relay"], by_service["worker"]
    assert api.figures["recommended_replicas"] == 1
    assert (api.monthly_now, api.monthly_after, api.saving) == pytest.approx((292.0, 73.0, 219.0))
    assert "down from 4 to 1" in api.action
    assert relay.saving == 0.0
    assert relay.action == "keep relay at 1 replica"
    assert worker.figures["recommended_replicas"] == 3
    assert worker.saving == pytest.approx(-73.0)  # a cost, not hidden
    assert "under-provisioned" in worker.action
    assert section.area is not None
    assert (section.area.monthly_now, section.area.monthly_after) == pytest.approx((511.0, 511.0 - 146.0))


def _profile(
    *bands: AccessBand, variant_bytes: int = 0, cold_bucket: str | None = "cold-0"
) -> StorageProfile:
    return StorageProfile(
        bands=bands,
        variant_bytes=variant_bytes,
        variants=0,
        cold_bucket=cold_bucket,
        warm_after=timedelta(days=30),
        cold_after=timedelta(days=90),
    )


def test_originals_move_to_the_tier_their_last_access_suits() -> None:
    profile = _profile(
        AccessBand(0, cold=False, photos=10, bytes=2 * GB),
        AccessBand(0, cold=True, photos=1, bytes=1 * GB),  # read again lately: back to hot
        AccessBand(1, cold=False, photos=5, bytes=4 * GB),
        AccessBand(2, cold=False, photos=3, bytes=10 * GB),
        AccessBand(2, cold=True, photos=7, bytes=20 * GB),  # already where it belongs
        variant_bytes=1 * GB,
    )
    section = tier_storage(profile, PRICES, ASSUME)
    moves = {rec.subject: rec for rec in section.recommendations}
    assert list(moves) == ["hot->warm", "hot->cold", "cold->hot"]
    # hot: 3 copies at 0.02 = 0.06 per GB; warm: 1.5 x 0.01 = 0.015; cold: 1.25 x 0.004 = 0.005.
    warm, cold, back = moves["hot->warm"], moves["hot->cold"], moves["cold->hot"]
    assert warm.figures == {"photos": 5, "bytes": 4 * GB}
    assert (warm.monthly_now, warm.monthly_after, warm.saving) == pytest.approx((0.24, 0.06, 0.18))
    assert (cold.monthly_now, cold.monthly_after, cold.saving) == pytest.approx((0.60, 0.05, 0.55))
    assert back.saving == pytest.approx(-0.055)
    assert cold.needs is None  # tiering is on
    assert warm.needs is not None
    assert "erasure-coded" in warm.needs
    # now: hot (2 + 4 + 10 + 1 variants) GB x 0.06 + cold 21 GB x 0.005
    # after: hot (2 + 1 + 1 variants) x 0.06 + warm 4 x 0.015 + cold 30 x 0.005
    assert section.area is not None
    assert section.area.monthly_now == pytest.approx(1.125)
    assert section.area.monthly_after == pytest.approx(0.45)


def test_the_cold_move_says_it_needs_a_cold_bucket_when_tiering_is_off() -> None:
    profile = _profile(AccessBand(2, cold=False, photos=1, bytes=GB), cold_bucket=None)
    (move,) = tier_storage(profile, PRICES, ASSUME).recommendations
    assert move.needs is not None
    assert "tiering.cold_bucket" in move.needs
    assert "photostore tier run" in move.needs


def test_recent_originals_and_variants_stay_hot_with_nothing_to_save() -> None:
    section = tier_storage(_profile(AccessBand(0, False, 3, GB), variant_bytes=GB), PRICES, ASSUME)
    assert section.recommendations == []
    assert section.skipped == []
    assert section.area is not None
    assert section.area.monthly_now == section.area.monthly_after == pytest.approx(0.12)


def test_an_empty_store_is_said_so() -> None:
    section = tier_storage(_profile(), PRICES, ASSUME)
    assert [skip.reason for skip in section.skipped] == ["no ready originals stored"]


def test_cdn_offload_saves_the_price_gap_on_the_bytes_it_takes_over() -> None:
    section = cdn_offload(EgressProfile(1000.0, "--egress-gb", 0.0, 0.9), PRICES)
    (rec,) = section.recommendations
    # now 1000 x 0.05; after 100 x 0.05 + 900 x 0.02; saving 1000 x 0.9 x (0.05 - 0.02)
    assert (rec.monthly_now, rec.monthly_after, rec.saving) == pytest.approx((50.0, 23.0, 27.0))
    assert rec.needs == "cdn.providers configured"
    partly = cdn_offload(EgressProfile(1000.0, "--egress-gb", 0.5, 0.9), PRICES).recommendations[0]
    assert partly.saving == pytest.approx(1000 * 0.4 * 0.03)
    assert partly.needs is None


def test_no_cdn_recommendation_at_or_above_the_target_or_without_egress() -> None:
    done = cdn_offload(EgressProfile(1000.0, "--egress-gb", 0.9, 0.9), PRICES)
    assert done.recommendations == []
    assert "at or above" in done.skipped[0].reason
    assert done.area is not None
    assert done.area.monthly_now == done.area.monthly_after == pytest.approx(1000 * (0.1 * 0.05 + 0.9 * 0.02))
    unknown = cdn_offload(EgressProfile(None, "no --egress-gb", 0.0, 0.9), PRICES)
    assert unknown.recommendations == []
    assert unknown.area is None
    assert "CDN offload skipped" in unknown.skipped[0].reason


def test_egress_from_the_read_rate() -> None:
    # 10 reads/s x 730 h x 3600 s x 150 kB = 3942 GB
    assert monthly_egress_gb(10.0, ASSUME) == pytest.approx(3942.0)


def test_the_total_saving_is_the_bill_now_less_the_bill_after() -> None:
    report = combine(
        right_size([ServiceUtilisation("api", 4, 0.15)], 0.6, PRICES),
        tier_storage(_profile(AccessBand(2, False, 3, 10 * GB), variant_bytes=GB), PRICES, ASSUME),
        cdn_offload(EgressProfile(1000.0, "--egress-gb", 0.0, 0.9), PRICES),
    )
    assert report.monthly_saving == pytest.approx(219.0 + 0.55 + 27.0)
    assert report.monthly_now - report.monthly_after == pytest.approx(report.monthly_saving)
    assert [area.kind for area in report.areas] == ["compute", "storage", "cdn"]


def test_nothing_measured_saves_nothing() -> None:
    report = combine(right_size([], 0.6, PRICES), cdn_offload(EgressProfile(None, "?", 0.0, 0.9), PRICES))
    assert report.recommendations == []
    assert report.monthly_saving == 0.0
    assert report.monthly_now == 0.0


def test_pricing_without_a_warm_price_is_refused() -> None:
    partial = Pricing(1.0, 16, {"hot": 0.02, "cold": 0.004}, 0.05, 0.02)
    with pytest.raises(BadRequest, match="no price for warm"):
        check_pricing(partial)
    check_pricing(load_pricing(DEFAULT_PRICING))
