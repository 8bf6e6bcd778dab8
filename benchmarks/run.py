"""Run xpnet's benchmark table against PyTorch and write JSON, Markdown and a PNG plot.

    python benchmarks/run.py                      # NumPy against torch on the CPU
    python benchmarks/run.py --backend cupy --batch-scale 4   # CuPy against torch CUDA
    python benchmarks/run.py --backend jax --parts models     # compiled JAX steps

Outputs go to ``benchmarks/results/<backend>.{json,md,png}`` (or ``--out DIR``).
Timings are medians of interleaved repeats; ratios are xpnet time / torch time.
"""

from __future__ import annotations

import os

# Measured here: with both libraries' worker threads busy-waiting between calls, each
# interleaved side runs up to 2x slower than alone. Let idle threads sleep (must be set
# before NumPy and torch load their thread pools); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# Some machines set these for old OpenBLAS builds; they make a current NumPy run its AVX2
# kernels (half its sgemm rate) while torch runs AVX-512. Unset here, in the benchmark
# process only (tests and CI leave them alone); the report names the kernels NumPy ran.
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse
import json
import sys
from pathlib import Path

from xpnet.bench import format_markdown, run_benchmarks


def plot(report: dict, path: Path) -> None:
    """Horizontal bar chart of the ratio per benchmark, with the 1.5x target marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    names = [row["name"] for row in rows]
    ratios = [row["ratio"] for row in rows]
    colours = ["tab:green" if r <= 1.5 else "tab:red" for r in ratios]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.5))
    ax.barh(range(len(rows)), ratios, color=colours)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(1.5, color="tab:red", linestyle="--", linewidth=0.8, label="target 1.5x")
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("xpnet time / PyTorch time (lower is better)")
    machine = report["machine"]
    ax.set_title(f"xpnet ({machine['backend']}) vs PyTorch ({machine['torch_device']})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.05)
    parser.add_argument("--batch-scale", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument(
        "--parts",
        default="conv,ops,models",
        help="comma-separated: conv, ops, models (default all)",
    )
    args = parser.parse_args(argv)
    report = run_benchmarks(
        args.backend,
        args.device,
        quick=args.quick,
        repeats=args.repeats,
        min_seconds=args.min_seconds,
        batch_scale=args.batch_scale,
        memory=not args.no_memory,
        log=print,
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / args.backend
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    table = format_markdown(report)
    stem.with_suffix(".md").write_text(table)
    try:
        plot(report, stem.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot written", file=sys.stderr)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
