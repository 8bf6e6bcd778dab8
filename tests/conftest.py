"""Test configuration: the ``backend`` fixture runs a test once per selected backend.

Selection, first match wins:

* ``pytest --backend NAME`` (repeatable, or comma-separated);
* the ``XPNET_TEST_BACKENDS`` environment variable (comma-separated);
* every registered backend plus ``numpy_readonly``.

An entry may name a device after a colon: ``--backend torch:cuda``.

A selected backend that is unavailable here is skipped with the registry's reason.
``numpy_readonly`` is NumPy whose input arrays are read-only: an op that writes into its
inputs fails there (JAX arrays are immutable, and the standard promises no mutability).

Markers: ``@pytest.mark.skip_backends("jax", reason=...)`` and
``@pytest.mark.xfail_backends("jax", reason=...)``.

The ``device_paths`` fixture runs a test twice: with the ops taking their CPU paths and
their GPU paths (fewest launches, no value checks that read the device), whatever the
backend's device, so the GPU code is checked on every CPU backend too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import xpnet
from helpers import BackendCase
from xpnet.backends import CPU_PROFILE, GPU_PROFILE, BackendSpec, assume_device_profile

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("XPNET_HYPOTHESIS_PROFILE", "default"))


def _readonly_from_host(xp: Any, obj: Any, dtype: Any, device: Any) -> Any:
    array = np.array(obj, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as xp

    return xp


READONLY = BackendSpec(
    name="numpy_readonly",
    module="numpy",
    load_namespace=_numpy_namespace,
    list_devices=lambda xp: ["cpu"],
    from_host=_readonly_from_host,
    description="NumPy with read-only inputs (test-only: catches in-place writes)",
)
xpnet.register_backend(READONLY, overwrite=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=None,
        help="run backend-parametrized tests on this backend (repeatable); "
        "default: XPNET_TEST_BACKENDS, else every registered backend",
    )


def _selected(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--backend")
    if chosen:
        names = [n for item in chosen for n in item.split(",")]
    elif os.environ.get("XPNET_TEST_BACKENDS"):
        names = os.environ["XPNET_TEST_BACKENDS"].split(",")
    else:
        names = [info.name for info in xpnet.list_backends()]
    return [n.strip() for n in names if n.strip()]


def pytest_configure(config: pytest.Config) -> None:
    known = {info.name for info in xpnet.list_backends()}
    unknown = [n for n in _selected(config) if n.partition(":")[0] not in known]
    if unknown:
        raise pytest.UsageError(
            f"--backend: unknown backend(s) {unknown}; known: {', '.join(sorted(known))}"
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    params = []
    infos = {info.name: info for info in xpnet.list_backends()}
    for entry in _selected(metafunc.config):
        info = infos[entry.partition(":")[0]]
        marks = [] if info.available else [pytest.mark.skip(reason=f"{entry}: {info.reason}")]
        params.append(pytest.param(entry, id=entry, marks=marks))
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[BackendCase]:
    """The backend under test, active for the duration of the test."""
    name, _, device = request.param.partition(":")
    skip = request.node.get_closest_marker("skip_backends")
    if skip is not None and name in skip.args:
        pytest.skip(f"{name}: {skip.kwargs.get('reason', 'skipped for this backend')}")
    xfail = request.node.get_closest_marker("xfail_backends")
    if xfail is not None and name in xfail.args:
        request.node.add_marker(
            pytest.mark.xfail(reason=xfail.kwargs.get("reason", "known failure"), strict=True)
        )
    with xpnet.use_backend(name, device or None) as active:
        yield BackendCase(name=name, xp=active.xp, device=active.device)


@pytest.fixture(params=["cpu", "gpu"], ids=["cpu-paths", "gpu-paths"])
def device_paths(request: pytest.FixtureRequest) -> Iterator[str]:
    """The ops' CPU paths or their GPU paths, on whatever backend the test runs."""
    with assume_device_profile(CPU_PROFILE if request.param == "cpu" else GPU_PROFILE):
        yield request.param


@pytest.fixture
def image_files(tmp_path: Path) -> tuple[Path, Path]:
    from test_data import write_idx

    """60 learnable 12x12 images in IDX files: class c has a bright row band at 3c."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=60).astype(np.uint8)
    images = rng.integers(0, 40, size=(60, 12, 12)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 3 * c : 3 * c + 3] = 250
    return (
        write_idx(tmp_path / "imgs-idx3-ubyte.gz", images),
        write_idx(tmp_path / "labs-idx1-ubyte", labels),
    )
