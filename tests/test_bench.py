"""The benchmark's timing bookkeeping: repeats that disagree widely are flagged."""

from __future__ import annotations

import time
from types import SimpleNamespace

from xpnet.bench import BenchResult, format_markdown, noisy_rows_warning
from xpnet.bench._timing import NOISY_SPREAD, _compare


def test_compare_records_how_much_its_repeats_disagree() -> None:
    sides = SimpleNamespace(sync=lambda: None, spreads=[])
    calls = {"n": 0}

    def sometimes_slow() -> None:
        calls["n"] += 1
        # Calls 1-3 warm up and size the repeats; the second timed repeat (call 5) is held
        # up, as by another process on a busy machine.
        time.sleep(0.03 if calls["n"] == 5 else 0.002)

    def steady() -> None:
        time.sleep(0.002)

    _compare(sides, sometimes_slow, steady, repeats=4, min_seconds=0.0)
    assert len(sides.spreads) == 1 and sides.spreads[0] > 5  # 30 ms against about 2
    _compare(sides, steady, steady, repeats=4, min_seconds=0.0)
    assert sides.spreads[1] < NOISY_SPREAD


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
