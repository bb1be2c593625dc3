"""Rebuild fastbp/datasets/digits.npz, the UCI optical handwritten digits bundled with fastbp.

    python scripts/make_digits.py

The source is the copy scikit-learn ships (sklearn/datasets/data/digits.csv.gz: the 1,797
test-set images of the UCI "Optical Recognition of Handwritten Digits" data set, 8x8 pixels with
values 0..16). Alpaydin, E. and Kaynak, C. (1998), UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0. Stored as uint8, compressed.
"""
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "fastbp" / "datasets" / "digits.npz"


def main():
    X, y = load_digits(return_X_y=True)
    assert X.shape == (1797, 64) and X.min() >= 0 and X.max() <= 16
    np.savez_compressed(OUT, X=X.astype(np.uint8), y=y.astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): X {X.shape}, y {y.shape}, classes {np.unique(y).tolist()}")


if __name__ == "__main__":
    main()
