"""The training loop and checkpoints: fit, evaluate, safetensors files, exact resumption,
divergence, atomic writes.

Oracles: evaluate's loss and accuracy are recomputed in float64 NumPy from the model's
logits; resumption is compared with an uninterrupted run bit for bit; file contents are
compared byte for byte.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase
from xpnet import models, nn, optim
from xpnet.data import DataLoader, Dataset
from xpnet.train import (
    Checkpoint,
    CheckpointError,
    TrainingDiverged,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)
from xpnet.train import _resume as resume_module


def blobs(n: int = 96, seed: int = 0) -> Dataset:
    """Three classes of 8x8 uint8 images: a bright square in one of three places."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    images = rng.integers(0, 60, size=(n, 1, 8, 8))
    for i, c in enumerate(labels):
        images[i, 0, 2 * c : 2 * c + 3, 1:5] += 180
    return Dataset(images.astype(np.uint8), labels.astype(np.int64), 3, name="blobs")


def tiny(seed: int = 0, *, dropout_rng: int | None = None) -> nn.Sequential:
    """Conv, batch norm (buffers, an int64 counter), dropout (randomness) and linear."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False, rng=rng),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25, rng=dropout_rng),
        nn.Linear(64, 3, rng=rng),
    )


def host_state(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: np.array(xpnet.to_numpy(v)) for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b)
    for key in a:
        x, y = np.asarray(xpnet.to_numpy(a[key])), np.asarray(xpnet.to_numpy(b[key]))
        assert x.dtype == y.dtype, key
        np.testing.assert_array_equal(x, y, err_msg=key)


def loaders(seed: int = 0, batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    # One batch shape everywhere: JAX compiles every op once per shape, which dominates.
    return (
        DataLoader(blobs(96), batch_size=batch_size, shuffle=True, seed=seed, mean=0.3, std=0.4),
        DataLoader(blobs(48, seed=1), batch_size=16, mean=0.3, std=0.4),
    )


# -- fit and evaluate ----------------------------------------------------------------------


def test_fit_learns_and_reports_history(backend: BackendCase) -> None:
    xpnet.seed(0)
    model = tiny()
    train, test = loaders()
    lines: list[str] = []
    history = fit(
        model,
        optim.Adam(model, lr=0.02),
        train,
        3,
        test_loader=test,
        progress=False,
        log=lines.append,
    )
    assert [r["epoch"] for r in history] == [1, 2, 3]
    keys = {
        "epoch",
        "loss",
        "accuracy",
        "images_per_second",
        "seconds",
        "lr",
        "test_loss",
        "test_accuracy",
    }
    assert all(set(r) == keys for r in history)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["test_accuracy"] >= 0.9
    assert all(r["images_per_second"] > 0 and r["seconds"] > 0 and r["lr"] == 0.02 for r in history)
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3: loss ")
    assert f"test accuracy {history[-1]['test_accuracy']:.4f}" in lines[-1]
    # The reported test metrics are those of evaluate() on the final weights.
    final = evaluate(model, test)
    assert final["accuracy"] == history[-1]["test_accuracy"]
    assert math.isclose(final["loss"], history[-1]["test_loss"], rel_tol=1e-12)


def test_evaluate_matches_a_numpy_computation(backend: BackendCase) -> None:
    # float32, like the other tests here: on JAX every new dtype means new compilations.
    model = tiny(3)
    _, test = loaders()
    model.train()
    result = evaluate(model, test)
    assert model.training  # the mode is restored
    model.eval()
    logits, labels = [], []
    for x, y in test:
        logits.append(xpnet.to_numpy(model(x)))
        labels.append(xpnet.to_numpy(y))
    z, t = np.concatenate(logits).astype(np.float64), np.concatenate(labels)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    # The loss is summed in float32 batch by batch, the reference in float64 at once.
    assert math.isclose(result["loss"], -logp[np.arange(len(t)), t].mean(), rel_tol=1e-6)
    assert result["accuracy"] == np.mean(z.argmax(axis=1) == t)
    assert result["images_per_second"] > 0
    with pytest.raises(ValueError, match="loader: produced no batches"):
        evaluate(model, DataLoader(blobs(4), batch_size=8, drop_last=True))


def test_fit_checks_its_arguments(tmp_path: Path) -> None:
    model = tiny()
    opt = optim.SGD(model, lr=0.1)
    train, _ = loaders()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="epochs: expected a positive int"):
            fit(model, opt, train, bad, progress=False, log=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer: was built for a different model"):
        fit(tiny(), opt, train, 1, progress=False, log=None)
    with pytest.raises(ValueError, match="resume: needs a checkpoint path"):
        fit(model, opt, train, 1, resume=True, progress=False, log=None)
    empty = DataLoader(blobs(4), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="train_loader: produced no batches in epoch 1"):
        fit(model, opt, empty, 1, progress=False, log=None)


def test_progress_bar_shows_loss_accuracy_and_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    tqdm_auto = pytest.importorskip("tqdm.auto")
    stream = io.StringIO()
    real = tqdm_auto.tqdm

    def shown(*args: Any, **kwargs: Any) -> Any:
        # Force the bar on (the test's stderr is not a terminal) and capture it.
        kwargs.update(disable=False, file=stream, mininterval=0)
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm_auto, "tqdm", shown)
    model = tiny()
    train, _ = loaders()
    fit(model, optim.SGD(model, lr=0.1), train, 1, log=None)
    text = stream.getvalue()
    assert "epoch 1/1" in text
    assert "loss=" in text and "acc=" in text and "img_s=" in text


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip_is_exact_and_pickle_free(
    backend: BackendCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny(1)
    opt = optim.Adam(model, lr=0.01)
    train, _ = loaders()
    fit(model, opt, train, 1, progress=False, log=None)  # fills BN buffers and Adam moments
    meta = {"model": "tiny", "nested": {"list": [1, 2.5, None]}, "big": 2**100}
    path = save_checkpoint(
        tmp_path / "sub" / "ckpt.safetensors",
        Checkpoint(model.state_dict(), opt.state_dict(), meta),
    )
    assert path == tmp_path / "sub" / "ckpt.safetensors"

    def no_pickle(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = load_checkpoint(path)
    assert_same_state(loaded.model, model.state_dict())
    assert loaded.model["1.num_batches_tracked"].dtype == np.int64
    assert loaded.meta == meta
    state = opt.state_dict()
    assert set(loaded.optimizer) == set(state)
    for key, value in state.items():
        if isinstance(value, int | float | bool):
            assert loaded.optimizer[key] == value and type(loaded.optimizer[key]) is type(value)
        else:
            np.testing.assert_array_equal(loaded.optimizer[key], xpnet.to_numpy(value))
    # The file is plain safetensors: an 8-byte header length, a JSON header, raw bytes.
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == "xpnet-checkpoint/2"
    assert header["model/0.weight"]["dtype"] == "F32" and header["model/0.weight"]["shape"] == [
        4,
        1,
        3,
        3,
    ]
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(
        load_file(path)["model/6.bias"], xpnet.to_numpy(model.state_dict()["6.bias"])
    )
    # Loaded weights give the same model.
    other = tiny(9)
    other.load_state_dict(loaded.model)
    assert_same_state(other.state_dict(), model.state_dict())


def test_checkpoint_file_mode_follows_the_umask(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", Checkpoint({"w": np.zeros(2)}))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_load_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    missing = tmp_path / "missing.safetensors"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04 this is not safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, foreign)
    cases = {
        missing: "checkpoint not found",
        garbage: "not a readable safetensors file",
        foreign: r"not an xpnet checkpoint \(format None, expected 'xpnet-checkpoint/2'\)",
    }
    for path, pattern in cases.items():
        with pytest.raises(CheckpointError, match=pattern) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)


def test_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, Checkpoint({"w": np.arange(3.0)}, meta={"epoch": 1}))
    before = path.read_bytes()
    new = Checkpoint({"w": np.arange(1000.0)}, meta={"epoch": 2})
    from xpnet.train import checkpoint as checkpoint_module

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full (simulated)")

    def interrupted_fsync(fd: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    for target, replacement, error in (
        ("replace", broken_replace, OSError),
        ("fsync", interrupted_fsync, KeyboardInterrupt),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(checkpoint_module.os, target, replacement)
            with pytest.raises(error):
                save_checkpoint(path, new)
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]
    assert load_checkpoint(path).meta == {"epoch": 1}
    save_checkpoint(path, new)  # and a normal write replaces it
    np.testing.assert_array_equal(load_checkpoint(path).model["w"], np.arange(1000.0))


# -- resuming ------------------------------------------------------------------------------------


def _run(
    path: Path, epochs: int, *, resume: bool = False, init_seed: int = 0, global_seed: int = 0
) -> tuple[nn.Module, optim.Optimizer, list[dict[str, float]]]:
    """A full training setup, as a fresh process would build it."""
    xpnet.seed(global_seed)
    model = tiny(init_seed, dropout_rng=None)
    model.append(nn.Dropout(0.1, rng=5))  # a layer with its own generator
    model.append(nn.Linear(3, 3, rng=np.random.default_rng(init_seed + 1)))
    opt = optim.Adam(model, lr=0.02)
    scheduler = optim.CosineAnnealingLR(opt, 3)
    train, test = loaders(seed=4)
    history = fit(
        model,
        opt,
        train,
        epochs,
        test_loader=test,
        scheduler=scheduler,
        checkpoint=path,
        resume=resume,
        meta={"run": "resume-test"},
        progress=False,
        log=None,
    )
    return model, opt, history


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    backend: BackendCase, tmp_path: Path
) -> None:
    full_model, full_opt, full_history = _run(tmp_path / "full.safetensors", 3)
    part = tmp_path / "part.safetensors"
    _, _, first = _run(part, 1)
    after_one = {k: np.array(v) for k, v in load_checkpoint(part).model.items()}
    # A new process: other global seed and other initial weights, all replaced on resume.
    model, opt, history = _run(part, 3, resume=True, init_seed=7, global_seed=99)
    assert_same_state(model.state_dict(), full_model.state_dict())
    assert_same_state(opt.state_dict(), full_opt.state_dict())  # Adam's moments and step
    assert opt.lr == full_opt.lr
    drop_timing = [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in history
    ]
    assert drop_timing == [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_second")}
        for r in full_history
    ]
    assert history[0] == first[0]  # the first epoch's record comes from the checkpoint
    saved = load_checkpoint(part)
    assert saved.meta["epoch"] == 3 and saved.meta["run"] == "resume-test"
    # The test can fail: training moved the weights, and randomness matters.
    assert any(not np.array_equal(after_one[k], v) for k, v in host_state(model).items())
    other_dropout, _, _ = _run(tmp_path / "other.safetensors", 3, global_seed=1)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            host_state(other_dropout).values(), host_state(full_model).values(), strict=True
        )
    )


def test_resume_without_a_checkpoint_starts_afresh_and_past_the_end_is_an_error(
    tmp_path: Path,
) -> None:
    # Resuming a checkpoint that already holds the epochs asked for would train nothing
    # (and the command line would still report a training time): an error naming both.
    path = tmp_path / "new.safetensors"
    _, _, history = _run(path, 1, resume=True)
    assert [r["epoch"] for r in history] == [1] and path.is_file()
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"already holds 1 epochs.*epochs=1"):
        _run(path, 1, resume=True)
    assert path.read_bytes() == before


def test_resume_refuses_another_architecture_or_optimizer(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    model = tiny()
    train, _ = loaders()
    fit(model, optim.Adam(model), train, 1, checkpoint=path, progress=False, log=None)
    other = models.simple_cnn(1, 3, 8)
    with pytest.raises(CheckpointError, match="holds another architecture") as info:
        fit(
            other,
            optim.Adam(other),
            train,
            2,
            checkpoint=path,
            resume=True,
            progress=False,
            log=None,
        )
    message = str(info.value)
    assert str(path) in message
    assert "shapes differ: 0.weight (model (16, 1, 3, 3), checkpoint (4, 1, 3, 3))" in message
    assert "missing from the checkpoint: 0.bias (16,), 3.weight (32, 16, 3, 3)" in message
    assert "not in the model: 1.weight (4,)" in message and "1.num_batches_tracked ()" in message
    wider = nn.Sequential(*list(tiny())[:-1], nn.Linear(64, 5))
    with pytest.raises(
        CheckpointError,
        match=r"another architecture: shapes differ: 6\.weight \(model \(5, 64\), checkpoint \(3, 64\)\), "
        r"6\.bias \(model \(5,\), checkpoint \(3,\)\)$",
    ):
        fit(
            wider,
            optim.Adam(wider),
            train,
            2,
            checkpoint=path,
            resume=True,
            progress=False,
            log=None,
        )
    same = tiny()
    with pytest.raises(CheckpointError, match="written with optimizer Adam, resuming with SGD"):
        fit(same, optim.SGD(same), train, 2, checkpoint=path, resume=True, progress=False, log=None)
    weights_only = tmp_path / "weights.safetensors"
    save_checkpoint(weights_only, Checkpoint(model.state_dict()))
    with pytest.raises(CheckpointError, match="holds weights but no training state"):
        fit(
            same,
            optim.Adam(same),
            train,
            2,
            checkpoint=weights_only,
            resume=True,
            progress=False,
            log=None,
        )


# -- divergence and interruption -------------------------------------------------------------


@F.primitive
def _scaled(x: Any, scale: Any, huge: bool) -> Any:
    return x * scale


@F.defvjp(_scaled, "x", "scale")
def _scaled_rule(x: Any, scale: Any, huge: bool) -> tuple[Any, Any]:
    xp = xpnet.get_namespace(x)

    def pullback(dy: Any) -> tuple[Any, Any]:
        grad = xp.reshape(xp.sum(dy * x), (1,))
        if huge:
            grad = grad * 0.0 + 1e38  # the update overflows, the loss was finite
        return dy * scale, grad

    return x * scale, pullback


class Poison(nn.Module):
    """Identity, except on one chosen training call: NaN output, a huge gradient (for
    ``scale``, through an op with a rule of its own), or an exception."""

    def __init__(self, at: int, what: str) -> None:
        super().__init__()
        self.register_parameter("scale", xpnet.asarray(np.ones(1, np.float32)))
        self.calls, self.at, self.what = 0, at, what

    def forward(self, x: Any) -> Any:
        if not self.training:
            return x * self.scale
        self.calls += 1
        hit = self.calls == self.at
        if hit and self.what == "interrupt":
            raise KeyboardInterrupt
        if hit and self.what == "nan":
            x = x * math.nan
        return _scaled(x, self.scale, hit and self.what == "huge")


def _poisoned(at: int, what: str) -> nn.Sequential:
    return nn.Sequential(Poison(at, what), *list(tiny()))


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    train, _ = loaders(batch_size=16)  # 6 steps per epoch
    model = _poisoned(6 + 3, "nan")  # epoch 2, step 3
    snapshots: list[bytes] = []
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 3") as info:
        fit(
            model,
            optim.SGD(model, lr=0.05),
            train,
            3,
            checkpoint=path,
            progress=False,
            log=lambda line: snapshots.append(path.read_bytes()),
        )
    assert f"{path} still holds the weights after epoch 1" in str(info.value)
    assert len(snapshots) == 1 and path.read_bytes() == snapshots[0]
    assert load_checkpoint(path).meta["epoch"] == 1


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_non_finite_weights_are_never_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    train, _ = loaders(batch_size=16)
    model = _poisoned(6, "huge")  # the last step of epoch 1 overflows the weights
    with pytest.raises(
        TrainingDiverged, match=r"parameters \['0.scale'\] became non-finite at epoch 1, step 6"
    ) as info:
        fit(model, optim.SGD(model, lr=10.0), train, 2, checkpoint=path, progress=False, log=None)
    assert f"nothing was written to {path}" in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    without = _poisoned(6, "huge")
    with pytest.raises(
        TrainingDiverged, match="no checkpoint is written without a checkpoint path"
    ):
        fit(without, optim.SGD(without, lr=10.0), train, 2, progress=False, log=None)


def test_nan_in_the_data_is_caught_at_its_step(backend: BackendCase) -> None:
    source = blobs(64)
    dataset = Dataset(source.images.astype(np.float64) / 255.0, source.labels, 3)
    # Damaged after it was checked (a Dataset refuses NaN pixels when it is made).
    dataset.images[40, 0, 3, 3] = np.nan  # in the third batch of 16
    model = tiny()
    train = DataLoader(dataset, batch_size=16)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step 3"):
        fit(model, optim.SGD(model, lr=0.1), train, 2, progress=False, log=None)


def test_interrupted_run_keeps_its_checkpoint_and_resumes_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    train, _ = loaders(batch_size=16)

    def run(model: nn.Module, epochs: int, resume: bool) -> nn.Module:
        xpnet.seed(0)
        fit(
            model,
            optim.Adam(model, lr=0.01),
            train,
            epochs,
            checkpoint=path,
            resume=resume,
            progress=False,
            log=None,
        )
        return model

    xpnet.seed(0)
    with pytest.raises(KeyboardInterrupt):
        run(_poisoned(6 + 4, "interrupt"), 2, resume=False)  # Ctrl-C in epoch 2
    assert load_checkpoint(path).meta["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]
    resumed = run(_poisoned(0, "none"), 2, resume=True)
    path.unlink()
    straight = run(_poisoned(0, "none"), 2, resume=False)
    assert_same_state(resumed.state_dict(), straight.state_dict())


def test_generators_of_layers_are_found() -> None:
    model = tiny(dropout_rng=3)
    found = resume_module._generators(model)
    assert set(found) == {"global", "5.rng"}
    assert found["global"] is xpnet.random.get_rng()


def test_build_model_names_and_sizes() -> None:
    with pytest.raises(ValueError, match=r"model: unknown model 'vgg'; choose from \['lenet5'"):
        models.build_model("vgg", 1, 10, 28)
    with pytest.raises(ValueError, match="image_size: lenet5 needs images of at least 12x12"):
        models.build_model("lenet5", 1, 10, 8)
    with pytest.raises(ValueError, match="image_size: simple_cnn_bn needs images of at least 4x4"):
        models.build_model("simple_cnn_bn", 1, 10, 3)
    # (VGG-11's 133M parameters are built once, in test_models.py.)
    for name in sorted(set(models.MODELS) - {"vgg11_bn"}):
        size = max(12 if name == "lenet5" else 8, models.MIN_IMAGE_SIZE.get(name, 1))
        model = models.build_model(name, 2, 7, size, rng=0)
        model.eval()
        out = model(xpnet.asarray(np.zeros((3, 2, size, size), np.float32)))
        assert tuple(out.shape) == (3, 7), name
    # One generator for all layers: the same seed gives the same weights, layers differ.
    a = host_state(models.build_model("simple_cnn_bn", 1, 10, 8, rng=5))
    b = host_state(models.build_model("simple_cnn_bn", 1, 10, 8, rng=5))
    assert_same_state(a, b)
    assert "1.running_var" in a and "0.bias" not in a  # conv without bias before BN
