#!/usr/bin/env bash
# Regenerate the pictures in docs/images/mnist from a real training run on MNIST
# (the data: $XPNET_MNIST_DIR, else ../shared/data/mnist). About 20 s of training on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python -m xpnet train --dataset mnist --epochs 5 --seed 0 --no-progress \
    --save "$out/lenet5.safetensors" --plots "$out/plots"
mkdir -p docs/images/mnist
cp "$out"/plots/*.png docs/images/mnist/
echo "updated: $(ls docs/images/mnist)"
