"""xpnet.viz: what each picture draws, read back from the figure and checked against plain
loops (counts, convolutions, pooling) and the inputs; the files; ``--plots`` on the CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
from helpers import BackendCase
from reference_conv import conv2d_loops
from reference_pooling import max_pool2d_loops
from xpnet import cli, data, nn, viz
from xpnet.train import load_checkpoint

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.colors import same_color  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiles(fig: Figure) -> dict[str, Any]:
    """Image axes by label, in drawing order."""
    return {ax.get_label(): ax for ax in fig.axes if ax.images and ax.get_label()}


def drawn(ax: Any) -> np.ndarray:
    return np.asarray(ax.images[0].get_array(), dtype=np.float64)


def cell_texts(ax: Any) -> dict[tuple[int, int], str]:
    """Annotations of an image axes by (row, column) of the cell they sit in."""
    found = {}
    for text in ax.texts:
        x, y = text.get_position()
        found[round(y), round(x)] = text.get_text()
    return found


# -- filters -----------------------------------------------------------------------------


def test_plot_filters_tiles_are_the_weights(backend: BackendCase) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 1, 3, 2))
    fig = viz.plot_filters(backend.asarray(w))
    found = tiles(fig)
    assert list(found) == [f"filter {o}" for o in range(5)]
    for o, ax in enumerate(found.values()):
        np.testing.assert_array_equal(drawn(ax), w[o, 0])
        # One colour scale for all, symmetric around zero.
        assert ax.images[0].get_clim() == pytest.approx((-np.abs(w).max(), np.abs(w).max()))
    assert "weight (5, 1, 3, 2)" in fig._suptitle.get_text()
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1


def test_plot_filters_input_channel_modes(backend: BackendCase) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 2, 2, 2))
    weight = backend.asarray(w)

    found = tiles(viz.plot_filters(weight))  # auto: 6 tiles, so all of them
    assert list(found) == [f"filter {o}, input {i}" for o in range(3) for i in range(2)]
    for o in range(3):
        for i in range(2):
            np.testing.assert_array_equal(drawn(found[f"filter {o}, input {i}"]), w[o, i])

    found = tiles(viz.plot_filters(weight, input_channels="mean"))
    for o in range(3):
        mean = sum(w[o, i] for i in range(2)) / 2
        np.testing.assert_allclose(drawn(found[f"filter {o}"]), mean, rtol=1e-12)

    found = tiles(viz.plot_filters(weight, input_channels=1, max_filters=2))
    assert list(found) == ["filter 0", "filter 1"]
    np.testing.assert_array_equal(drawn(found["filter 1"]), w[1, 1])


def test_plot_filters_of_a_model_picks_its_conv_layer(backend: BackendCase) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, rng=0, dtype="float64"),
        nn.ReLU(),
        nn.Conv2d(2, 4, 2, rng=1, dtype="float64"),
    )
    first = viz.plot_filters(model)
    assert first._suptitle.get_text().startswith("layer 0 (Conv2d)")
    w0 = xpnet.to_numpy(model[0].weight)
    np.testing.assert_array_equal(drawn(tiles(first)["filter 1"]), w0[1, 0])

    second = viz.plot_filters(model, layer="2", input_channels="all")
    w2 = xpnet.to_numpy(model[2].weight)
    np.testing.assert_array_equal(drawn(tiles(second)["filter 3, input 1"]), w2[3, 1])
    assert len(tiles(second)) == 8

    alone = viz.plot_filters(model[2], input_channels=0)
    np.testing.assert_array_equal(drawn(tiles(alone)["filter 2"]), w2[2, 0])


def test_plot_filters_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match=r"4-D weight .* got an array of shape \(3, 3, 3\)"):
        viz.plot_filters(np.zeros((3, 3, 3)))
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten())
    with pytest.raises(ValueError, match=r"layer: no layer named '7' .* Conv2d layers are '0'"):
        viz.plot_filters(model, layer="7")
    with pytest.raises(ValueError, match="'1' is a ReLU, not a Conv2d"):
        viz.plot_filters(model, layer="1")
    with pytest.raises(ValueError, match="has no Conv2d layer"):
        viz.plot_filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0)))
    with pytest.raises(ValueError, match=r"input_channels: .* from 0 to 1, got 2"):
        viz.plot_filters(np.zeros((2, 2, 3, 3)), input_channels=2)
    with pytest.raises(ValueError, match="max_filters: expected a positive int, got 0"):
        viz.plot_filters(np.zeros((2, 1, 3, 3)), max_filters=0)


# -- feature maps --------------------------------------------------------------------------


def test_feature_maps_are_the_layer_outputs(backend: BackendCase) -> None:
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype="float64"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 2, 2, rng=1, dtype="float64"),
    )
    image = rng.standard_normal((2, 6, 4))
    fig = viz.plot_feature_maps(model, backend.asarray(image), max_channels=2)

    # Oracle: plain loops from the same weights.
    w = xpnet.to_numpy(model[0].weight)
    b = xpnet.to_numpy(model[0].bias)
    conv = conv2d_loops(image[None], w, b, pads=(1, 1, 1, 1))[0]
    relu = np.maximum(conv, 0.0)
    pooled = max_pool2d_loops(relu[None], (2, 2), (2, 2))[0][0]
    expected = {"input": image, "0": conv, "1": relu, "2": pooled}

    found = tiles(fig)
    # Only the 4-D outputs (not Flatten, Linear), the first two channels of each.
    assert list(found) == [f"{n}:{c}" for n in expected for c in range(2)]
    for name, maps in expected.items():
        for c in range(2):
            np.testing.assert_allclose(drawn(found[f"{name}:{c}"]), maps[c], rtol=1e-10, atol=1e-12)
    labels = [found[f"{n}:0"].get_ylabel() for n in expected]
    assert labels == [
        "input\n2x6x4",
        "0 Conv2d\n3x6x4\n(first 2)",
        "1 ReLU\n3x6x4\n(first 2)",
        "2 MaxPool2d\n3x3x2\n(first 2)",
    ]


def test_feature_maps_of_chosen_layers_in_inference_mode(backend: BackendCase) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, rng=0, dtype="float64"),
        nn.BatchNorm2d(2, dtype="float64"),
        nn.Sequential(nn.ReLU(), nn.AvgPool2d(2)),
    )
    bn = model[1]
    bn.set_buffer("running_mean", backend.asarray([0.5, -1.0]))
    bn.set_buffer("running_var", backend.asarray([4.0, 0.25]))
    image = np.arange(16.0).reshape(4, 4) / 8
    fig = viz.plot_feature_maps(model, backend.asarray(image), layers=["2.1", 1], show_input=False)

    w = xpnet.to_numpy(model[0].weight)
    b = xpnet.to_numpy(model[0].bias)
    conv = conv2d_loops(image[None, None], w, b, pads=(1, 1, 1, 1))[0]
    # Inference mode: the running statistics, not the batch's.
    normed = np.stack(
        [(conv[0] - 0.5) / np.sqrt(4.0 + 1e-5), (conv[1] + 1.0) / np.sqrt(0.25 + 1e-5)]
    )
    relu = np.maximum(normed, 0.0)
    pooled = np.array(
        [
            [
                [relu[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(2)]
                for i in range(2)
            ]
            for c in range(2)
        ]
    )
    found = tiles(fig)
    assert list(found) == ["2.1:0", "2.1:1", "1:0", "1:1"]  # in the order asked for
    for c in range(2):
        np.testing.assert_allclose(drawn(found[f"2.1:{c}"]), pooled[c], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(drawn(found[f"1:{c}"]), normed[c], rtol=1e-10, atol=1e-12)
    # The modes are restored and the statistics untouched.
    assert model.training and bn.training
    np.testing.assert_array_equal(xpnet.to_numpy(bn.running_mean), [0.5, -1.0])


def test_feature_maps_refuse_bad_input() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Flatten(), nn.Linear(8, 2, rng=0))
    image = np.zeros((1, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"layers: unknown layer 'conv'; the model's layers are 0 \(Conv2d\), 1 \(Flatten\)",
    ):
        viz.plot_feature_maps(model, image, layers=["conv"])
    with pytest.raises(ValueError, match="index 3 is out of range for a model of 3 layers"):
        viz.plot_feature_maps(model, image, layers=[3])
    with pytest.raises(
        ValueError, match=r"1 \(Flatten\) gives an output of shape \(1, 8\), not a feature map"
    ):
        viz.plot_feature_maps(model, image, layers=["1"])
    with pytest.raises(ValueError, match=r"image: expected one image, got a batch of 2"):
        viz.plot_feature_maps(model, np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"image: expected one image .* got shape \(4,\)"):
        viz.plot_feature_maps(model, np.zeros(4))
    with pytest.raises(ValueError, match="layer 0 \\(Conv2d\\)"):
        viz.plot_feature_maps(model, np.zeros((3, 4, 4)))  # 3 channels into a 1-channel conv
    with pytest.raises(ValueError, match="none of its layers gives a 4-D feature map"):
        viz.plot_feature_maps(nn.Sequential(nn.Flatten()), image)


# -- training curves -----------------------------------------------------------------------


def test_training_curves_draw_the_history() -> None:
    history = [
        {"epoch": 1, "loss": 1.5, "accuracy": 0.5, "test_loss": 1.2, "test_accuracy": 0.6},
        {"epoch": 2, "loss": 0.7, "accuracy": 0.8, "test_loss": 0.9, "test_accuracy": 0.7},
        {"epoch": 3, "loss": 0.4, "accuracy": 0.9, "test_loss": 0.8, "test_accuracy": 0.75},
    ]
    fig = viz.plot_training_curves(history)
    axes = {ax.get_label(): ax for ax in fig.axes}
    assert set(axes) == {"loss", "accuracy"}
    for metric, ax in axes.items():
        lines = {line.get_label(): line for line in ax.lines}
        assert set(lines) == {"train", "test"}
        for label, key in (("train", metric), ("test", f"test_{metric}")):
            np.testing.assert_array_equal(lines[label].get_xdata(), [1, 2, 3])
            np.testing.assert_array_equal(lines[label].get_ydata(), [r[key] for r in history])
    assert fig._suptitle.get_text() == "final test accuracy 0.7500"

    # Without test data or accuracy: only what is there, epochs counted from 1.
    fig = viz.plot_training_curves([{"loss": 2.0}, {"loss": 1.0}])
    (ax,) = fig.axes
    (line,) = ax.lines
    assert line.get_label() == "train"
    np.testing.assert_array_equal(line.get_xdata(), [1, 2])
    np.testing.assert_array_equal(line.get_ydata(), [2.0, 1.0])


def test_training_curves_refuse_bad_histories() -> None:
    with pytest.raises(ValueError, match="history: expected a non-empty list"):
        viz.plot_training_curves([])
    with pytest.raises(ValueError, match="history: expected a non-empty list"):
        viz.plot_training_curves({"loss": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"history\[1\]: expected a mapping with at least 'loss'"):
        viz.plot_training_curves([{"loss": 1.0}, {"accuracy": 0.5}])
    with pytest.raises(ValueError, match=r"history\[0\]\['accuracy'\]: expected a number"):
        viz.plot_training_curves([{"loss": 1.0, "accuracy": "high"}])


# -- confusion matrix ----------------------------------------------------------------------


def test_confusion_matrix_counts_match_a_loop(backend: BackendCase) -> None:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 4, size=50)
    predictions = np.where(rng.random(50) < 0.6, targets, rng.integers(0, 4, size=50))
    expected = np.zeros((4, 4), dtype=int)
    for t, p in zip(targets, predictions, strict=True):
        expected[t, p] += 1

    fig = viz.plot_confusion_matrix(
        backend.asarray(targets, "int64"), backend.asarray(predictions, "int64")
    )
    ax = next(ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>")
    np.testing.assert_array_equal(drawn(ax), expected)
    texts = cell_texts(ax)
    assert {cell: int(text) for cell, text in texts.items()} == {
        (t, p): int(expected[t, p]) for t in range(4) for p in range(4)
    }
    correct = int(sum(expected[k, k] for k in range(4)))
    assert ax.get_title() == f"confusion matrix: accuracy {correct / 50:.4f} ({correct} of 50)"

    # Row-normalised from scores (argmax), named classes.
    scores = np.eye(5)[predictions] * 3.0 - 1.0
    names = ["zero", "one", "two", "three", "four"]
    fig = viz.plot_confusion_matrix(
        backend.asarray(targets, "int64"), backend.asarray(scores), names, normalize="true"
    )
    ax = next(ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>")
    full = np.zeros((5, 5), dtype=int)
    full[:4, :4] = expected
    fractions = np.zeros((5, 5))
    for t in range(5):
        row = sum(full[t])
        for p in range(5):
            fractions[t, p] = full[t, p] / row if row else 0.0
    np.testing.assert_allclose(drawn(ax), fractions, rtol=1e-12)
    for (t, p), text in cell_texts(ax).items():
        lines = text.split("\n")
        assert int(lines[0]) == full[t, p]
        assert lines[1:] == ([f"{fractions[t, p]:.0%}"] if full[t, p] else [])
    assert [label.get_text() for label in ax.get_xticklabels()] == names
    assert [label.get_text() for label in ax.get_yticklabels()] == names


def test_confusion_matrix_refuses_bad_labels() -> None:
    with pytest.raises(ValueError, match="same length, got 3 targets and 2 predictions"):
        viz.plot_confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="predictions: class index 3 is beyond the 3 classes"):
        viz.plot_confusion_matrix([0, 1, 2], [0, 3, 2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="targets: class indices must be >= 0, got -1"):
        viz.plot_confusion_matrix([0, -1], [0, 1])
    with pytest.raises(
        ValueError, match="targets: expected integer class indices, got non-integer"
    ):
        viz.plot_confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(
        ValueError, match="normalize: expected None, 'true', 'pred' or 'all', got 'rows'"
    ):
        viz.plot_confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(ValueError, match="targets: no examples"):
        viz.plot_confusion_matrix([], [])
    with pytest.raises(ValueError, match=r"expected 4 names \(num_classes\), got 2"):
        viz.plot_confusion_matrix([0, 1], [0, 1], ["a", "b"], num_classes=4)


# -- predictions ---------------------------------------------------------------------------


def test_predictions_mark_exactly_the_mistakes(backend: BackendCase) -> None:
    rng = np.random.default_rng(4)
    images = rng.random((7, 1, 5, 4))
    targets = np.array([0, 1, 2, 0, 1, 2, 0])
    predictions = np.array([0, 2, 2, 0, 0, 2, 0])  # wrong at 1 and 4
    probabilities = rng.random((7, 3))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    fig = viz.plot_predictions(
        backend.asarray(images),
        backend.asarray(targets, "int64"),
        backend.asarray(predictions, "int64"),
        backend.asarray(probabilities),
        class_names=["cat", "dog", "owl"],
        max_images=6,
    )
    found = tiles(fig)
    assert list(found) == [f"image {i}" for i in range(6)]
    names = ["cat", "dog", "owl"]
    for i, ax in enumerate(found.values()):
        np.testing.assert_array_equal(drawn(ax), images[i, 0])
        mistake = i in (1, 4)
        assert bool(same_color(ax.title.get_color(), viz.MISTAKE_COLOR)) is mistake
        assert all(spine.get_visible() is mistake for spine in ax.spines.values())
        confidence = probabilities[i, predictions[i]]
        assert ax.get_title() == (
            f"pred {names[predictions[i]]} {confidence:.0%}\ntrue {names[targets[i]]}"
        )
    assert fig._suptitle.get_text() == "6 of 7 images, 2 mistakes among them (red)"

    only = viz.plot_predictions(
        backend.asarray(images),
        backend.asarray(targets, "int64"),
        backend.asarray(predictions, "int64"),
        only_mistakes=True,
    )
    assert list(tiles(only)) == ["image 1", "image 4"]
    np.testing.assert_array_equal(drawn(tiles(only)["image 4"]), images[4, 0])
    assert tiles(only)["image 1"].get_title() == "pred 2\ntrue 1"


def test_predictions_without_mistakes_or_labels() -> None:
    images = np.zeros((3, 4, 4))
    fig = viz.plot_predictions(images, [1, 2, 0], [1, 2, 0], only_mistakes=True)
    assert not tiles(fig)
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == ["no mistakes among 3 images"]
    # Unlabelled: predictions from scores, nothing marked.
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    fig = viz.plot_predictions(images, None, scores)
    assert [ax.get_title() for ax in tiles(fig).values()] == ["pred 1", "pred 0", "pred 1"]
    assert not any(
        same_color(ax.title.get_color(), viz.MISTAKE_COLOR) for ax in tiles(fig).values()
    )


def test_predictions_refuse_mismatched_input() -> None:
    images = np.zeros((3, 1, 4, 4))
    with pytest.raises(ValueError, match="same length, got 3 images, 2 predictions, 3 targets"):
        viz.plot_predictions(images, [0, 1, 0], [0, 1])
    with pytest.raises(
        ValueError, match=r"images: expected \(N, H, W\), .* got shape \(3, 2, 4, 4\)"
    ):
        viz.plot_predictions(np.zeros((3, 2, 4, 4)), [0, 1, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="only_mistakes: needs targets"):
        viz.plot_predictions(images, None, [0, 1, 0], only_mistakes=True)
    with pytest.raises(ValueError, match="probabilities: 2 classes, but a prediction is class 2"):
        viz.plot_predictions(images, [0, 1, 0], [0, 2, 0], np.full((3, 2), 0.5))


# -- files -------------------------------------------------------------------------------


def small_figure() -> Figure:
    return viz.plot_training_curves([{"loss": 1.0}, {"loss": 0.5}])


def test_save_figure_writes_whole_files_only(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "curves.png"
    assert viz.save_figure(small_figure(), target) == target
    first = target.read_bytes()
    assert first.startswith(PNG_MAGIC)
    assert sorted(p.name for p in target.parent.iterdir()) == ["curves.png"]

    # Drawing fails half-way: the old picture stays, no temporary file is left.
    broken = small_figure()

    def fail(stream: Any, **kwargs: Any) -> None:
        stream.write(PNG_MAGIC + b"half")
        raise RuntimeError("drawing failed")

    broken.savefig = fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="drawing failed"):
        viz.save_figure(broken, target)
    assert target.read_bytes() == first
    assert sorted(p.name for p in target.parent.iterdir()) == ["curves.png"]

    svg = viz.save_figure(small_figure(), tmp_path / "curves.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(ValueError, match=r"format 'bmpx', which matplotlib cannot write"):
        viz.save_figure(small_figure(), tmp_path / "curves.bmpx")
    with pytest.raises(TypeError, match="fig: expected a matplotlib Figure, got str"):
        viz.save_figure("figure", tmp_path / "x.png")  # type: ignore[arg-type]


def test_missing_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'xpnet\[viz\]'"):
        viz.require_matplotlib()
    with pytest.raises(ImportError, match=r"pip install 'xpnet\[viz\]'"):
        viz.plot_confusion_matrix([0], [0])
    # The command refuses before loading data or training.
    from xpnet.cli import _train as train_command

    monkeypatch.setattr(train_command, "_load_data", lambda *a, **k: pytest.fail("loaded data"))
    status = cli.main(["train", "--plots", str(tmp_path / "plots")])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert "xpnet: error: --plots: xpnet.viz draws with matplotlib" in err
    assert "pip install 'xpnet[viz]'" in err
    assert not (tmp_path / "plots").exists()


def test_plots_folder_must_be_usable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("")
    status = cli.main(["train", "--plots", str(occupied)])
    assert status == 2
    assert f"--plots: {occupied} exists and is not a folder" in capsys.readouterr().err


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes().startswith(PNG_MAGIC)
    import matplotlib.image

    picture = matplotlib.image.imread(path)
    assert picture.ndim == 3 and min(picture.shape[:2]) > 100
    return np.asarray(picture)


PICTURES = list(viz.TRAINING_PICTURES)


def tiny_classifier() -> tuple[nn.Sequential, data.Dataset]:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(12, 1, 4, 4)).astype(np.uint8)
    labels = np.arange(12) % 3
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, rng=0, dtype="float64"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32, 3, rng=1, dtype="float64"),
    )
    return model, data.Dataset(images, labels, 3)


def test_training_figures_show_the_model_outputs(backend: BackendCase) -> None:
    model, dataset = tiny_classifier()
    loader = data.DataLoader(dataset, batch_size=5, mean=0.5, std=0.25, dtype="float64")
    figures = viz.training_figures(
        model, None, loader, max_images=3, pictures=["confusion_matrix", "mistakes"]
    )
    assert list(figures) == ["confusion_matrix", "mistakes"]

    # Oracle: the model's logits computed by hand on the host, image by image.
    weight = xpnet.to_numpy(model[0].weight)
    bias = xpnet.to_numpy(model[0].bias)
    dense_w = xpnet.to_numpy(model[3].weight)
    dense_b = xpnet.to_numpy(model[3].bias)
    inputs = (dataset.images / 255.0 - 0.5) / 0.25
    predicted = []
    for image in inputs:
        hidden = np.maximum(conv2d_loops(image[None], weight, bias, pads=(1, 1, 1, 1))[0], 0)
        logits = dense_w @ hidden.reshape(-1) + dense_b
        predicted.append(int(np.argmax(logits)))
    counts = np.zeros((3, 3), dtype=int)
    for t, p in zip(dataset.labels, predicted, strict=True):
        counts[t, p] += 1
    matrix = figures["confusion_matrix"].axes[0]
    np.testing.assert_array_equal(drawn(matrix), counts)

    wrong = [i for i in range(12) if predicted[i] != dataset.labels[i]]
    assert wrong, "the untrained model should make mistakes"
    shown = tiles(figures["mistakes"])
    assert len(shown) == min(3, len(wrong))
    for ax, index in zip(shown.values(), wrong, strict=False):
        # Numbered within the mistakes; the picture is the loader's (normalised) input.
        np.testing.assert_allclose(drawn(ax), inputs[index, 0], rtol=1e-12)
        assert ax.get_title().split("\n")[1] == f"true {dataset.labels[index]}"
        assert ax.get_title().startswith(f"pred {predicted[index]} ")
    assert model.training  # the mode is restored


def test_save_training_plots_writes_pngs(tmp_path: Path) -> None:
    model, dataset = tiny_classifier()
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.4}]
    written = viz.save_training_plots(
        model,
        history,
        data.DataLoader(dataset, 5, dtype="float64"),
        tmp_path / "plots",
        max_images=4,
    )
    assert list(written) == PICTURES
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(f"{n}.png" for n in PICTURES)
    for name, path in written.items():
        assert path == tmp_path / "plots" / f"{name}.png"
        read_png(path)
    # Without history or convolutions (an MLP): the pictures that apply.
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0))
    figures = viz.training_figures(mlp, None, dataset)
    assert list(figures) == ["confusion_matrix", "predictions", "mistakes"]


def test_save_training_plots_refuses_bad_data(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0))
    dataset = tiny_classifier()[1]
    with pytest.raises(
        ValueError, match="pictures: expected names from filters, .* got \\['filter'\\]"
    ):
        viz.training_figures(model, None, dataset, pictures=["filter"])
    with pytest.raises(TypeError, match="data: expected a DataLoader or a Dataset, got list"):
        viz.save_training_plots(model, None, [1, 2], tmp_path)  # type: ignore[arg-type]
    empty = data.Dataset(np.zeros((0, 1, 4, 4), np.uint8), np.zeros(0, np.int64), 3)
    with pytest.raises(ValueError, match="data: produced no batches"):
        viz.save_training_plots(model, None, empty, tmp_path)


# -- the command line ------------------------------------------------------------------------


def test_train_and_evaluate_with_plots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    plots, weights = tmp_path / "plots", tmp_path / "w.safetensors"
    status = cli.main(
        [
            "train",
            "--epochs",
            "1",
            "--model",
            "simple_cnn",
            "--test-size",
            "1500",
            "--no-progress",
            "--save",
            str(weights),
            "--plots",
            str(plots),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    paths = [plots / f"{name}.png" for name in PICTURES]
    assert f"plots: {', '.join(map(str, paths))}" in out.splitlines()
    assert sorted(os.listdir(plots)) == sorted(p.name for p in paths)
    for path in paths:
        read_png(path)

    # evaluate --plots: the same pictures for the saved weights, curves from the checkpoint.
    # Captured instead of drawn to PNG (that was checked above), to keep the test quick.
    captured: dict[str, Figure] = {}

    def capture(fig: Figure, path: Any, **kwargs: Any) -> Path:
        captured[Path(path).name] = fig
        return Path(path)

    from xpnet.viz import _files  # where save_training_plots finds save_figure

    monkeypatch.setattr(_files, "save_figure", capture)
    status = cli.main(["evaluate", str(weights), "--no-progress", "--plots", str(tmp_path / "e")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert sorted(captured) == sorted(p.name for p in paths)
    history = load_checkpoint(weights).meta["history"]
    curves = {ax.get_label(): ax for ax in captured["training_curves.png"].axes}
    test_line = next(line for line in curves["accuracy"].lines if line.get_label() == "test")
    np.testing.assert_array_equal(test_line.get_ydata(), [r["test_accuracy"] for r in history])
    # The confusion matrix holds every test image, and its diagonal is the accuracy printed.
    matrix = drawn(captured["confusion_matrix.png"].axes[0])
    assert matrix.sum() == 1500
    printed = float(
        next(line for line in out.splitlines() if line.startswith("test accuracy")).split()[-1]
    )
    assert np.trace(matrix) / 1500 == pytest.approx(printed, abs=5e-5)
