"""Speed and memory of xpnet against PyTorch eager, measured side by side.

Every figure is a ratio ``xpnet time / torch time`` measured in the same process, on the
same device, with the two timed in alternation (interleaved repeats) so that clock changes
and background load hit both alike. ``python benchmarks/run.py`` runs the full table and
writes JSON, Markdown and a PNG plot; ``xpnet bench`` runs a short version.

PyTorch is the yardstick, so it must be installed (``pip install 'xpnet[torch]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._counts import count_lenet5_step, format_counts
from ._memory import conv_peak_memory
from ._rows import _conv_rows, _model_rows, _op_rows, torch_lenet5
from ._timing import (
    NOISY_SPREAD,
    BenchResult,
    _Sides,
    blas_description,
    compiled_kernels_description,
    matmul_gflops,
)

__all__ = [
    "BenchResult",
    "blas_description",
    "compiled_kernels_description",
    "conv_peak_memory",
    "count_lenet5_step",
    "format_counts",
    "format_markdown",
    "matmul_gflops",
    "noisy_rows_warning",
    "run_benchmarks",
    "torch_lenet5",
]


def run_benchmarks(
    backend: str = "numpy",
    device: Any = None,
    *,
    quick: bool = False,
    repeats: int = 7,
    min_seconds: float = 0.05,
    batch_scale: int = 1,
    memory: bool = True,
    log: Callable[[str], None] | None = None,
    parts: tuple[str, ...] = ("conv", "ops", "models"),
) -> dict[str, Any]:
    """Run the benchmark table on one backend against PyTorch on the same device.

    Parameters
    ----------
    backend, device : str, optional
        The xpnet backend (``"numpy"``, ``"cupy"``, ...) and device.
    quick : bool
        A short subset (what ``xpnet bench`` runs).
    repeats : int
        Interleaved timing repeats; medians are reported.
    min_seconds : float
        Minimum duration of one timed repeat.
    batch_scale : int
        Multiply every batch size (e.g. 4 on a GPU for batch 256).
    memory : bool
        Also measure the peak memory of a large convolution.
    parts : tuple of str
        Which rows: ``"conv"`` (convolutions), ``"ops"`` (pooling, linear, loss),
        ``"models"`` (LeNet-5 training steps, eager and compiled, inference, a ResNet
        block).

    Returns
    -------
    dict
        ``{"machine": {...}, "results": [row dicts], "memory": {...}}``.
    """
    sides = _Sides(backend, device)
    machine = {
        "backend": backend,
        "device": str(sides.backend.device),
        "torch": sides.torch.__version__,
        "torch_device": str(sides.torch_device),
        "threads": sides.torch.get_num_threads(),
        "cpu_count": os.cpu_count() or 1,
        "blas": blas_description(),
        "compiled_kernels": compiled_kernels_description(),
        "matmul_gflops": matmul_gflops(),
    }
    if sides.torch_device.type == "cuda":
        machine["gpu"] = sides.torch.cuda.get_device_name()
    rows: list[BenchResult] = []
    runs: dict[str, Callable[[], list[BenchResult]]] = {
        "conv": lambda: _conv_rows(sides, repeats, min_seconds, quick, batch_scale),
        "ops": lambda: _op_rows(sides, repeats, min_seconds, batch_scale),
        "models": lambda: _model_rows(sides, repeats, min_seconds, quick, batch_scale),
    }
    unknown = sorted(set(parts) - set(runs))
    if unknown:
        raise ValueError(f"parts: expected some of {sorted(runs)}, got {unknown}")
    for part in parts:
        start = len(sides.spreads)
        new = runs[part]()
        spreads = sides.spreads[start:]
        if len(spreads) == len(new):  # one timed comparison per row
            for row, spread in zip(new, spreads, strict=True):
                row.extra["spread"] = spread
        rows.extend(new)
        if log is not None:
            for row in new:
                log(
                    f"{row.name:55} xpnet {row.xpnet_ms:9.3f} ms  torch {row.torch_ms:9.3f} ms"
                    f"  ratio {row.ratio:5.2f}"
                )
    report: dict[str, Any] = {"machine": machine, "results": [r.as_dict() for r in rows]}
    if memory and not quick and "conv" in parts:
        report["memory"] = conv_peak_memory(sides)
    if not quick:
        report["step_counts"] = {
            str(batch): {
                "calls": total.calls,
                "launches": total.launches,
                "transfers": total.transfers,
                "syncs": total.syncs,
            }
            for batch in (64, 1024)
            for _, total in count_lenet5_step(batch)[-1:]
        }
    return report


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (plus the memory figures)."""
    machine = report["machine"]
    gflops = machine["matmul_gflops"]
    lines = [
        f"Backend `{machine['backend']}` on `{machine['device']}` against torch "
        f"{machine['torch']} on `{machine['torch_device']}`"
        + (f" ({machine['gpu']})" if "gpu" in machine else "")
        + f"; {machine['threads']} threads; float32 matmul {gflops:,.0f} GFLOP/s; "
        f"NumPy's BLAS: {machine.get('blas', 'unknown')}; NumPy's compiled kernels: "
        f"{machine.get('compiled_kernels', 'unknown')}.",
        "",
        "| benchmark | xpnet ms | torch ms | ratio | xpnet GFLOP/s | % of matmul |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        rate = row.get("xpnet_gflops")
        rate_text = f"{rate:,.1f}" if rate else ""
        share = f"{100 * rate / gflops:.0f}%" if rate else ""
        lines.append(
            f"| {row['name']} | {row['xpnet_ms']:.3f} | {row['torch_ms']:.3f} | "
            f"{row['ratio']:.2f} | {rate_text} | {share} |"
        )
    warning = noisy_rows_warning(report)
    if warning:
        lines += ["", warning]
    counts = report.get("step_counts")
    if counts:
        lines += [
            "",
            "LeNet-5 + Adam training step as on a GPU (op-counting backend, CuPy's rules): "
            + "; ".join(
                f"batch {batch}: {c['launches']} launches, {c['syncs']} host syncs"
                for batch, c in counts.items()
            )
            + ".",
        ]
    memory = report.get("memory")
    if memory:
        lines += [
            "",
            f"Peak temporary memory, 3x3 conv {memory['channels']}->{memory['channels']} on "
            f"{memory['batch']}x{memory['channels']}x{memory['size']}x{memory['size']}: "
            f"forward {memory['peak_forward_mib']:.0f} MiB, forward+backward "
            f"{memory['peak_forward_backward_mib']:.0f} MiB (input {memory['input_mib']:.0f} MiB, "
            f"output {memory['output_mib']:.0f} MiB, workspace budget "
            f"{memory['workspace_budget_mib']:.0f} MiB).",
        ]
    return "\n".join(lines) + "\n"


def noisy_rows_warning(report: dict[str, Any]) -> str:
    """A warning naming the rows whose repeats disagreed widely, or ``""``."""
    noisy = [
        f"{row['name']} ({row['extra']['spread']:.1f}x)"
        for row in report["results"]
        if row.get("extra", {}).get("spread", 1.0) > NOISY_SPREAD
    ]
    if not noisy:
        return ""
    return (
        f"Warning: the repeats of {len(noisy)} row(s) disagreed by more than {NOISY_SPREAD}x "
        f"(slowest over fastest): {', '.join(noisy)}. Something else was using the machine; "
        "rerun when it is idle before trusting those ratios."
    )


def _main() -> int:
    """``python -m xpnet.bench``: the short table that ``xpnet bench`` prints."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xpnet.bench", description=__doc__)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--device", default=None)
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.count:
        print(format_counts(count_lenet5_step(args.batch), args.batch), end="")
        return 0
    report = run_benchmarks(args.backend, args.device, quick=True, repeats=5, memory=False)
    print(format_markdown(report), end="")  # with the warning about noisy rows, if any
    return 0
