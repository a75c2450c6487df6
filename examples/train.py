"""A tiny training job for the CI examples: logistic regression in plain numpy.

It stands in for a real training script (scikit-learn, XGBoost, PyTorch...) and writes
what ``modelgate submit`` sends:

- ``model.npz``: the weights (the artifact);
- ``metrics.json``: evaluation on a holdout set: a confusion matrix (the registry derives
  accuracy, precision, recall and F1 from it, the same way for every version), the log
  loss, and per-example correctness as evidence for a McNemar significance gate. The
  holdout is drawn from a fixed seed, so every version is scored on the same examples;
- ``lineage.json``: the data version, feature pipeline, environment, hyperparameters
  and seed (``submit`` adds the git commit and the CI run by itself).

    python examples/train.py --out build/ [--seed 7] [--epochs 300] [--lr 0.5]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import zipfile
from pathlib import Path

import numpy as np

DATA_SEED = 20261101  # the dataset (and its holdout) do not change between runs
FEATURES = 8
DATA_VERSION = f"synthetic-logreg@seed-{DATA_SEED}"
FEATURE_PIPELINE = "raw-standardised-v1"


def make_data(n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    x = rng.normal(size=(n, FEATURES))
    true_w = rng.normal(size=FEATURES)
    logits = x @ true_w + 0.3 * rng.normal(size=n)
    y = (logits > 0).astype(np.int64)
    return x, y


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def train(x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, l2: float, seed: int):
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=0.01, size=x.shape[1])
    b = 0.0
    for _ in range(epochs):
        p = sigmoid(x @ w + b)
        grad_w = x.T @ (p - y) / len(y) + l2 * w
        grad_b = float(np.mean(p - y))
        w -= lr * grad_w
        b -= lr * grad_b
    return w, b


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez, with fixed timestamps: the same weights give the same bytes (and the
    same sha256), so a re-run job is recognised as the same model."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in sorted(arrays.items()):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(
                zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0)), buffer.getvalue()
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--l2", type=float, default=0.001)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    x, y = make_data()
    split = int(len(y) * 0.8)
    mean, std = x[:split].mean(axis=0), x[:split].std(axis=0)
    x = (x - mean) / std
    w, b = train(x[:split], y[:split], epochs=args.epochs, lr=args.lr, l2=args.l2, seed=args.seed)

    x_hold, y_hold = x[split:], y[split:]
    p = np.clip(sigmoid(x_hold @ w + b), 1e-12, 1 - 1e-12)
    pred = (p >= 0.5).astype(np.int64)
    matrix = [[int(np.sum((y_hold == t) & (pred == q))) for q in (0, 1)] for t in (0, 1)]
    log_loss = float(-np.mean(y_hold * np.log(p) + (1 - y_hold) * np.log(1 - p)))
    correct = (pred == y_hold).tolist()

    save_npz(args.out / "model.npz", w=w, b=np.array([b]), mean=mean, std=std)
    metrics = {
        "metrics": [
            {"name": "log_loss", "value": log_loss, "dataset": "holdout",
             "sample_count": len(y_hold)},
        ],
        "confusion_matrices": [
            {"dataset": "holdout", "matrix": matrix, "labels": ["negative", "positive"]}
        ],
        "evidence": [{"kind": "correctness", "dataset": "holdout", "values": correct}],
    }  # fmt: skip
    (args.out / "metrics.json").write_text(json.dumps(metrics))
    lineage = {
        "data_version": DATA_VERSION,
        "feature_pipeline_version": FEATURE_PIPELINE,
        "environment": f"python {platform.python_version()} numpy {np.__version__}",
        "hyperparameters": {"epochs": args.epochs, "lr": args.lr, "l2": args.l2},
        "seed": args.seed,
    }
    (args.out / "lineage.json").write_text(json.dumps(lineage, indent=2))
    accuracy = (matrix[0][0] + matrix[1][1]) / len(y_hold)
    print(f"holdout accuracy {accuracy:.4f}, log loss {log_loss:.4f} -> {args.out}/")


if __name__ == "__main__":
    main()
