"""The test matrix: one ``tests`` session per backend, plus lint, typecheck and docs.

``nox`` runs the default sessions (the README's test command). ``nox -s "tests(backend='jax')"``
runs one backend. The cupy session is added when a GPU is present (``nvidia-smi`` works) or
``XPNET_NOX_CUPY=1`` asks for it.

PyTorch is installed in every test session as the autograd oracle. The pin defaults to the
CPU build this project is tested with; set ``XPNET_TORCH_SPEC`` (e.g. ``torch>=2.4``) to
change it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

TORCH_SPEC = os.environ.get("XPNET_TORCH_SPEC", "torch==2.13.0")
CPU_BACKENDS = ["numpy", "array_api_strict", "torch", "jax"]


def _gpu_present() -> bool:
    if os.environ.get("XPNET_NOX_CUPY") == "1":
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, check=False).returncode == 0


BACKENDS = CPU_BACKENDS + (["cupy"] if _gpu_present() else [])
# Extra packages each backend's session needs besides xpnet[test] and the torch oracle.
BACKEND_PACKAGES = {
    # array-api-strict supplies "another library" in mixed-input tests; scikit-learn the
    # bundled digits that the README's main command trains on.
    # matplotlib (viz) everywhere: the pictures are checked on every backend. Numba on
    # NumPy: its compiled convolution kernels, checked against the standard path (which
    # the oldest-NumPy session, without Numba, runs throughout). onnx and onnxruntime
    # (onnx) everywhere: imported graphs run on every backend.
    "numpy": [".[strict,digits,viz,numba,onnx]"],
    "array_api_strict": [".[strict,viz,onnx]"],
    "torch": [".[viz,onnx]"],
    "jax": [".[jax,viz,onnx]"],
    "cupy": [".[cupy,viz,onnx]"],
}
# The test-only read-only NumPy backend rides along with the numpy session.
SELECTED = {"numpy": ["numpy", "numpy_readonly"]}

nox.options.sessions = [
    "tests",
    "tests_oldest_numpy",
    "distributed",
    "lint",
    "typecheck",
    "docs",
]
nox.options.error_on_missing_interpreters = True


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the test suite on one backend."""
    session.install(TORCH_SPEC)
    session.install(".[test]", *BACKEND_PACKAGES[backend])
    selection = [arg for name in SELECTED.get(backend, [backend]) for arg in ("--backend", name)]
    session.run("pytest", "-n", "auto", *selection, *session.posargs)


@nox.session
def tests_oldest_numpy(session: nox.Session) -> None:
    """The NumPy backend on the oldest NumPy xpnet supports (1.26): value-based casting,
    where a 0-d array meeting a Python scalar becomes float64, still applies there."""
    session.install(TORCH_SPEC)
    session.install(".[test,strict,digits,viz]", "numpy>=1.26,<2")
    session.run("python", "-c", "import numpy; print('NumPy', numpy.__version__)")
    session.run("pytest", "-n", "auto", "--backend", "numpy", *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """Data-parallel training over MPI (mpi4py and MPICH from pip, no system MPI needed:
    the tests launch ``mpiexec -n 1`` and ``-n 2`` jobs, on NumPy, torch, JAX and
    array-api-strict) and batch inference on a Dask LocalCluster."""
    session.install(TORCH_SPEC)
    session.install(".[test,digits,mpi,dask,jax,strict]", "mpich")
    session.run("pytest", "-p", "no:xdist", "--backend", "numpy", "tests/test_distributed.py",
                *session.posargs)  # fmt: skip


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark table against PyTorch (not part of the test matrix).

    ``nox -s bench -- --backend cupy --batch-scale 4`` passes options to benchmarks/run.py;
    ``nox -s bench -- --backend jax --parts models`` times the compiled JAX step.
    """
    session.install(TORCH_SPEC)
    session.install(".[viz,jax]", "threadpoolctl")  # jax: compiled steps; which BLAS kernels
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(default=False)
def bench_peers(session: nox.Session) -> None:
    """xpnet, Chainer and PyTorch on the LeNet-5 training step (not part of the matrix).

    Chainer 7.8 needs NumPy < 2 and, to import, setuptools < 70 (it reads pkg_resources and
    numpy.distutils), so this session pins both; xpnet supports NumPy >= 1.26.
    """
    session.install(TORCH_SPEC)
    session.install("numpy>=1.26,<2", "setuptools<70", "wheel", "threadpoolctl")
    session.install("--no-build-isolation", "chainer>=7.8")
    session.install(".")
    session.run("python", "benchmarks/peers.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "scripts", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "scripts", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The Sphinx site with warnings as errors, then every example in it run as a doctest.

    The HTML lands in ``docs/_build/html``. The tutorial's MNIST examples need the data
    (``XPNET_MNIST_DIR`` or ``../shared/data/mnist``) and are skipped without it.
    """
    session.install(".[docs,viz,strict,onnx]")  # strict: the backend examples use it
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build", "-W", "--keep-going", "-b", builder, "docs", f"docs/_build/{builder}"
        )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library."""
    session.install("mypy>=1.11", ".[viz,onnx]")
    session.run("mypy")
