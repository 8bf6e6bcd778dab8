"""The LeNet-5 MNIST recipe in plain PyTorch, as the yardstick for ``xpnet train``.

    python benchmarks/torch_recipe.py [--data-dir DIR] [--epochs 5]

Same data (the 8,000 / 2,000 split of MNIST's test files, read by xpnet.data), same
normalisation, model, optimizer (Adam, constant lr 1e-3), batch size 64 and seed as
``xpnet train --dataset mnist``; prints the training time and the test accuracy.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from xpnet import data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    folder = args.data_dir or data.find_mnist()
    if folder is None:
        raise SystemExit("no MNIST directory: pass --data-dir or set XPNET_MNIST_DIR")
    train, test = data.load_mnist(folder)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    def tensors(dataset: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        x = (dataset.images.astype(np.float32) / 255.0 - data.MNIST_MEAN) / data.MNIST_STD
        return torch.from_numpy(x), torch.from_numpy(dataset.labels)

    (x_train, y_train), (x_test, y_test) = tensors(train), tensors(test)
    tnn = torch.nn
    model = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), 64):
            index = order[i : i + 64]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch}/{args.epochs}: test accuracy {accuracy:.4f}")
    print(f"training time: {time.perf_counter() - start:.1f} s")
    print(f"test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
