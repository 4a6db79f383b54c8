"""The growth model: the spec's compound growth exactly, years to its targets, rates fitted to history."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from photostore.errors import BadRequest
from photostore.ops.growth import (
    DAYS_PER_YEAR,
    PB,
    GrowthRates,
    StartingPoint,
    fitted_rate,
    fitted_rates,
    grow,
    project,
    read_history,
    uploads_between,
    years_to,
)


def test_the_specs_start_grows_to_12m_users_and_1_5_pb_in_a_year() -> None:
    rows = project(StartingPoint(), GrowthRates(), 24)
    assert rows[0].users == 10_000_000
    assert rows[12].users == pytest.approx(12_000_000, rel=1e-12)
    assert rows[12].storage_bytes == pytest.approx(1.5 * PB, rel=1e-12)
    assert rows[24].users == pytest.approx(14_400_000, rel=1e-12)
    assert rows[24].storage_bytes == pytest.approx(2.25 * PB, rel=1e-12)
    assert rows[6].users == pytest.approx(10_000_000 * math.sqrt(1.2), rel=1e-12)  # compounded monthly


def test_years_to_the_specs_targets() -> None:
    assert years_to(1e9, 10e6, 0.20) == pytest.approx(math.log(100) / math.log(1.2))  # ~25.3 years
    assert years_to(100 * PB, 1 * PB, 0.50) == pytest.approx(math.log(100) / math.log(1.5))  # ~11.4
    assert years_to(5, 10, 0.2) == 0.0
    assert years_to(20, 10, 0.0) is None


def test_photos_add_every_upload_of_a_growing_daily_rate() -> None:
    # With no growth a year of 10M a day is exactly 365.25 days of it.
    assert uploads_between(10e6, 0.0, 12) == pytest.approx(10e6 * DAYS_PER_YEAR)
    # With growth, the sum of day by day uploads matches the integral to within a day's rounding.
    days = int(DAYS_PER_YEAR)
    by_day = sum(grow(10e6, 0.2, 12 * (d + 0.5) / DAYS_PER_YEAR) for d in range(days))
    assert uploads_between(10e6, 0.2, 12 * days / DAYS_PER_YEAR) == pytest.approx(by_day, rel=1e-4)
    rows = project(StartingPoint(), GrowthRates(), 12)
    assert rows[12].photos == pytest.approx(333e6 + uploads_between(10e6, 0.2, 12))


def test_a_rate_is_recovered_from_history(tmp_path: Path) -> None:
    years = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert fitted_rate(years, [100 * 1.3**t for t in years]) == pytest.approx(0.3)
    rows = ["timestamp,users,storage,requests", "2024-01-01T00:00:00,1000000,1000000000000000,50000"]
    start = 1_704_067_200  # 2024-01-01 as unix seconds: both forms of timestamp are read
    for month in range(3, 25, 3):
        t = month / 12
        when = start + t * DAYS_PER_YEAR * 86400
        rows.append(f"{when:.0f},{1e6 * 1.25**t:.0f},{1e15 * 1.6**t:.0f},{5e4 * 1.1**t:.0f}")
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    history = read_history(csv_path, StartingPoint())
    rates = fitted_rates(history, GrowthRates())
    assert rates.users == pytest.approx(0.25, abs=1e-4)
    assert rates.storage == pytest.approx(0.60, abs=1e-4)
    assert rates.requests == pytest.approx(0.10, abs=1e-4)
    assert history.last.users == pytest.approx(1e6 * 1.25**2, rel=1e-6)  # the last row is the start


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "needs a header"),
        ("timestamp,users,storage,requests\n2024-01-01,1,1,1\n", "at least two rows"),
        ("timestamp,users,storage,requests\n2024-01-01,1,1,1\n2025-01-01,0,1,1\n", "above 0"),
        ("timestamp,users,storage,requests\nyesterday,1,1,1\n2025-01-01,2,2,2\n", "history.csv"),
        ("timestamp,users,storage,requests\n2025-01-01T00:00,1,1,1\n2025-01-01T00:05,2,2,2\n", "1 day apart"),
    ],
)
def test_bad_history_is_refused_with_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(content)
    with pytest.raises(BadRequest, match=message):
        read_history(path, StartingPoint())
