"""Independent pixel-PCA embedding with numpy (float64).

usage: pca_reference.py ROWS.f32 N D K WHITENING EPS OUT.f32
Reads N x D float32 rows, fits mean + covariance (ddof 1) + eigh, keeps the
K largest components (each eigenvector's largest-magnitude entry made
positive), scales component j by (lambda_j + EPS * lambda_0)^(-WHITENING/2),
and writes the L2-normalised embeddings of all N rows (N x K float32) after
the K eigenvalues.
"""
import sys

import numpy as np


def main(path, n, d, k, whitening, eps, out):
    x = np.fromfile(path, dtype="<f4").astype(np.float64).reshape(n, d)
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (n - 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:k]
    evals, evecs = np.clip(evals[order], 0, None), evecs[:, order].T
    pivot = np.argmax(np.abs(evecs), axis=1)
    evecs *= np.sign(evecs[np.arange(k), pivot])[:, None]
    scale = (evals + eps * max(evals[0], 1e-12)) ** (-whitening / 2)
    y = xc @ (evecs * scale[:, None]).T
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    np.concatenate([evals, y.ravel()]).astype("<f4").tofile(out)


if __name__ == "__main__":
    a = sys.argv
    main(a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5]), float(a[6]), a[7])
