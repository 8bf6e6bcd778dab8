"""The benchmark's timing bookkeeping: repeats that disagree widely are flagged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from xpnet.bench import BenchResult, _timing, format_markdown, noisy_rows_warning
from xpnet.bench._timing import NOISY_SPREAD


def test_compare_records_how_much_its_repeats_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the clock scripted (no real timing): a held-up repeat widens the spread."""
    sides = SimpleNamespace(sync=lambda: None, spreads=[])
    durations = iter(
        [
            *(0.002, 0.002),  # sizing the repeats: one call of each side
            *(0.002, 0.002, 0.030, 0.002, 0.002, 0.002, 0.002, 0.002),  # ours, theirs, ...
            *(0.002, 0.002),
            *(0.002, 0.0021, 0.0021, 0.002, 0.002, 0.002, 0.0022, 0.002),
        ]
    )
    monkeypatch.setattr(_timing, "_time", lambda fn, sync, number: next(durations))
    mine, yours = _timing._compare(sides, lambda: None, lambda: None, 4, 0.0)
    assert (mine, yours) == (0.002, 0.002)  # medians: the held-up repeat does not move them
    assert sides.spreads == [pytest.approx(15.0)]  # 30 ms against 2
    _timing._compare(sides, lambda: None, lambda: None, 4, 0.0)
    assert sides.spreads[1] == pytest.approx(1.1) and sides.spreads[1] < NOISY_SPREAD


def test_noisy_rows_are_named_in_the_report() -> None:
    rows = [
        BenchResult("steady op", "ops", 2.0, 1.0, extra={"spread": 1.1}),
        BenchResult("noisy op", "ops", 30.0, 1.0, extra={"spread": 31.0}),
    ]
    report = {
        "machine": {
            "backend": "numpy", "device": "cpu", "torch": "2", "torch_device": "cpu",
            "threads": 2, "matmul_gflops": 100.0, "blas": "openblas",
        },
        "results": [r.as_dict() for r in rows],
    }  # fmt: skip
    warning = noisy_rows_warning(report)
    assert "1 row(s)" in warning and "noisy op (31.0x)" in warning and "steady" not in warning
    assert warning in format_markdown(report)
    report["results"] = report["results"][:1]
    assert noisy_rows_warning(report) == "" and "Warning" not in format_markdown(report)
