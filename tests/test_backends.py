"""The backend registry: listing, selection, context managers, laziness, conversions."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import threading

import array_api_compat
import numpy as np
import pytest

import xpnet
from helpers import BackendCase
from xpnet.backends import BackendSpec, BackendUnavailableError, UnknownBackendError
from xpnet.backends import _registry as registry

BUILTIN = ["numpy", "cupy", "torch", "jax", "array_api_strict"]


def _run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _missing_spec(name: str = "fakelib") -> BackendSpec:
    return BackendSpec(
        name=name,
        module="xpnet_no_such_library",
        load_namespace=lambda: pytest.fail("must not be imported"),
        list_devices=lambda xp: ["cpu"],
        extra="fake",
    )


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch):
    """Let a test register backends without leaking them into other tests."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_load_cache", dict(registry._load_cache))
    return registry


def test_every_builtin_backend_is_listed_with_a_reason_when_unavailable() -> None:
    infos = {info.name: info for info in xpnet.list_backends()}
    assert set(BUILTIN) <= set(infos)
    for name in BUILTIN:
        info = infos[name]
        assert info.module == name
        if info.available:
            assert info.reason is None and info.devices
        else:
            assert info.reason and info.devices == []
            assert "pip install" in info.reason or "found no usable" in info.reason
    assert infos["numpy"].available and infos["numpy"].devices == ["cpu"]
    assert infos["cupy"].needs_gpu and infos["cupy"].extra == "cupy"
    assert not infos["torch"].needs_gpu
    assert xpnet.available_backends() == [n for n, i in infos.items() if i.available]


def test_installed_backends_are_available() -> None:
    available = xpnet.available_backends()
    for name in ("torch", "jax", "array_api_strict"):
        try:
            importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            assert name not in available
        else:
            assert name in available


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError, match=r"unknown backend 'tensorflow'; known .*numpy"):
        xpnet.set_backend("tensorflow")
    with pytest.raises(UnknownBackendError, match="cupy, jax, numpy"):
        with xpnet.use_backend("mxnet"):
            pass


def test_unavailable_backend_says_why_and_how_to_install(scratch_registry) -> None:
    xpnet.register_backend(_missing_spec())
    info = next(i for i in xpnet.list_backends() if i.name == "fakelib")
    assert not info.available
    assert "xpnet_no_such_library is not installed" in info.reason
    with pytest.raises(BackendUnavailableError, match=r"fakelib.*pip install 'xpnet\[fake\]'"):
        xpnet.set_backend("fakelib")
    assert "fakelib" not in xpnet.available_backends()


def test_gpu_backend_without_device_is_unavailable(scratch_registry) -> None:
    spec = BackendSpec(
        name="gpuless",
        module="numpy",
        load_namespace=lambda: array_api_compat.numpy,
        list_devices=lambda xp: [],
        needs_gpu=True,
    )
    xpnet.register_backend(spec)
    with pytest.raises(BackendUnavailableError, match="installed but found no usable GPU"):
        xpnet.set_backend("gpuless")


def test_cupy_is_skipped_with_a_reason_here() -> None:
    info = next(i for i in xpnet.list_backends() if i.name == "cupy")
    if not info.available:
        with pytest.raises(BackendUnavailableError, match="cupy"):
            xpnet.set_backend("cupy")
    else:
        assert info.devices


def test_register_backend_rejects_duplicates_unless_overwriting(scratch_registry) -> None:
    with pytest.raises(ValueError, match="'numpy' is already registered"):
        xpnet.register_backend(BackendSpec("numpy", "numpy", lambda: None, lambda xp: ["cpu"]))
    with pytest.raises(TypeError, match="spec must be a BackendSpec"):
        xpnet.register_backend("numpy")  # type: ignore[arg-type]
    spec = BackendSpec(
        name="numpy2",
        module="numpy",
        load_namespace=lambda: array_api_compat.numpy,
        list_devices=lambda xp: ["cpu"],
    )
    xpnet.register_backend(spec)
    with xpnet.use_backend("numpy2") as active:
        assert active.name == "numpy2"
        assert isinstance(xpnet.asarray([1.0]), np.ndarray)
    xpnet.unregister_backend("numpy2")
    assert "numpy2" not in xpnet.available_backends()


def test_a_backend_with_a_current_device_has_it_selected(scratch_registry, monkeypatch) -> None:
    """CuPy launches on its current GPU whatever its arrays' device, so choosing a device
    must make it current: kept by set_backend, restored when use_backend's block ends."""
    current = ["dev0"]

    def select(device: str):
        previous = current[0]
        current[0] = device
        return lambda: current.__setitem__(0, previous)

    spec = BackendSpec(
        name="twogpus",
        module="numpy",
        load_namespace=lambda: array_api_compat.numpy,
        list_devices=lambda xp: ["dev0", "dev1"],
        select_device=select,
    )
    xpnet.register_backend(spec)
    monkeypatch.setattr(registry, "_default", None)
    with xpnet.use_backend("twogpus", "dev1"):
        assert current == ["dev1"]
        with xpnet.use_backend("twogpus", "dev0"):
            assert current == ["dev0"]
        assert current == ["dev1"]
    assert current == ["dev0"]
    xpnet.set_backend("twogpus", "dev1")
    assert current == ["dev1"] and xpnet.get_backend().device == "dev1"


def test_entry_point_backends_are_registered(scratch_registry, monkeypatch) -> None:
    spec = BackendSpec(
        name="from_plugin",
        module="numpy",
        load_namespace=lambda: array_api_compat.numpy,
        list_devices=lambda xp: ["cpu"],
    )

    class FakeEntryPoint:
        name = "from_plugin"

        def load(self):
            return lambda: spec

    seen = []

    def entry_points(group: str):
        seen.append(group)
        return [FakeEntryPoint()]

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)
    assert "from_plugin" in xpnet.available_backends()
    assert seen == ["xpnet.backends"]


def test_default_is_numpy_and_env_var_selects() -> None:
    assert _run_python("import xpnet; print(xpnet.get_backend().name)") == "numpy"
    if "array_api_strict" in xpnet.available_backends():
        code = (
            "import xpnet; print(xpnet.get_backend().name, type(xpnet.asarray([1.0])).__module__)"
        )
        out = _run_python(code, XPNET_BACKEND="array_api_strict")
        assert out.startswith("array_api_strict array_api_strict")


def test_env_var_with_unknown_backend_fails_clearly() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    environment["XPNET_BACKEND"] = "nope"
    done = subprocess.run(
        [sys.executable, "-c", "import xpnet; xpnet.asarray([1.0])"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown backend 'nope'" in done.stderr


def test_import_is_lazy() -> None:
    code = (
        "import sys, xpnet, xpnet.functional as F\n"
        "x = xpnet.asarray([[[[1.0, 2.0], [3.0, 4.0]]]])\n"
        "F.conv2d(x, x)\n"
        "xpnet.available_backends.__name__\n"
        "heavy = ['cupy', 'torch', 'jax', 'dask', 'array_api_strict']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    assert _run_python(code) == "[]"


def test_backend_library_is_imported_on_first_use() -> None:
    if "array_api_strict" not in xpnet.available_backends():
        pytest.skip("array_api_strict is not installed")
    code = (
        "import sys, xpnet\n"
        "before = 'array_api_strict' in sys.modules\n"
        "xpnet.set_backend('array_api_strict')\n"
        "print(before, 'array_api_strict' in sys.modules)\n"
    )
    assert _run_python(code) == "False True"


def test_use_backend_nests_and_restores() -> None:
    assert xpnet.get_backend().name == "numpy"
    with xpnet.use_backend("numpy_readonly") as outer:
        assert xpnet.get_backend() is outer
        with xpnet.use_backend("numpy") as inner:
            assert xpnet.get_backend() is inner
        assert xpnet.get_backend() is outer
        with pytest.raises(RuntimeError), xpnet.use_backend("numpy"):
            raise RuntimeError("boom")
        assert xpnet.get_backend() is outer
    assert xpnet.get_backend().name == "numpy"


def test_use_backend_is_per_thread() -> None:
    seen: dict[str, str] = {}
    started = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with xpnet.use_backend("numpy_readonly"):
            started.set()
            release.wait(5)
            seen["worker"] = xpnet.get_backend().name

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(5)
    seen["main"] = xpnet.get_backend().name
    release.set()
    thread.join()
    assert seen == {"main": "numpy", "worker": "numpy_readonly"}


def test_set_backend_changes_the_default(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_default", None)
    active = xpnet.set_backend("numpy_readonly")
    assert xpnet.get_backend() is active
    assert not xpnet.asarray([1.0]).flags.writeable
    with xpnet.use_backend("numpy"):
        assert xpnet.asarray([1.0]).flags.writeable


def test_bad_device_names_the_argument() -> None:
    with pytest.raises(
        ValueError, match=r"device: the numpy backend only has device 'cpu', got 'cuda'"
    ):
        xpnet.set_backend("numpy", device="cuda")


def test_get_namespace() -> None:
    assert xpnet.get_namespace() is array_api_compat.numpy
    assert xpnet.get_namespace(np.ones(2)) is array_api_compat.numpy


def test_asarray_places_data_on_the_active_backend(backend: BackendCase) -> None:
    floats = xpnet.asarray([[1.5, 2.0]])
    assert array_api_compat.array_namespace(floats) is backend.xp
    assert floats.dtype == backend.xp.float32  # Python floats default to float32
    assert array_api_compat.device(floats) == backend.device
    ints = xpnet.asarray([1, 2, 3])
    assert backend.xp.isdtype(ints.dtype, "integral")
    explicit = xpnet.asarray([1, 2], dtype="float64")
    assert explicit.dtype == backend.xp.float64
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    kept = xpnet.asarray(host)
    assert kept.dtype == backend.xp.float64  # arrays keep their dtype
    np.testing.assert_array_equal(xpnet.to_numpy(kept), host)
    with pytest.raises(ValueError, match="dtype: .* has no dtype named 'float17'"):
        xpnet.asarray([1.0], dtype="float17")


def test_asarray_moves_arrays_between_backends(backend: BackendCase) -> None:
    source = np.linspace(0.0, 1.0, 6).reshape(2, 3)
    on_backend = backend.asarray(source)
    with xpnet.use_backend("numpy"):
        back = xpnet.asarray(on_backend)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, source)
    again = xpnet.asarray(back)  # the fixture's backend is active again
    assert array_api_compat.array_namespace(again) is backend.xp


def test_to_numpy_round_trip(backend: BackendCase) -> None:
    values = np.random.default_rng(0).normal(size=(3, 4))
    for dtype in ("float32", "float64"):
        result = xpnet.to_numpy(backend.asarray(values, dtype))
        assert isinstance(result, np.ndarray)
        assert result.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(result, values.astype(dtype))
    assert xpnet.to_numpy([1, 2]).tolist() == [1, 2]
