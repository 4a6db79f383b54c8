"""The fuzzer's short run in the suite (``make fuzz`` runs ten minutes), and every input it or the
hostile generator ever broke something with, replayed."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from photostore.errors import PhotostoreError
from photostore.imaging.validate import probe
from photostore.settings import LimitSettings
from tests.fuzz.seeds import write_seeds

REGRESSIONS = Path(__file__).with_name("regressions")
ROOT = Path(__file__).parents[2]
RUNS = 10_000


def test_a_short_fuzz_run_finds_no_crash(tmp_path: Path) -> None:
    write_seeds(tmp_path / "corpus")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.image_harness",
            str(tmp_path / "corpus"),
            f"-runs={RUNS}",
            "-max_len=65536",
            "-max_total_time=120",
            f"-artifact_prefix={tmp_path}/crash-",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert crashes == []
    assert f"Done {RUNS} runs" in done.stderr or "DONE" in done.stderr


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*")), ids=lambda p: p.name)
def test_regression_files_are_refused_cleanly(path: Path) -> None:
    """Each file here once got past a check or crashed one: now it is refused with a 4xx error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PhotostoreError) as refused:
            probe(path.read_bytes(), LimitSettings())
    assert 400 <= refused.value.status < 500


def test_there_are_regression_files() -> None:
    assert len(list(REGRESSIONS.glob("*"))) >= 5
