"""Reference values for graft-advise's estimators, computed independently with NumPy.

Run: python3 reference.py > reference.json   (NumPy only; the output is committed, so the
Rust tests need no Python). Every estimator is computed here the direct way, in the feature
space, without the spectral shortcuts graft-advise uses:

- LogME: the larger of MacKay's fixed point with A = alpha I + beta F^T F solved and inverted
  explicitly (gamma = D - alpha tr(A^-1), log|A| by slogdet) and the two edges (no signal:
  y ~ N(0, I/beta); exact fit when F F^T has rank N: y ~ N(0, F F^T/alpha), by solve and
  slogdet of the N x N Gram matrix); the mean over classes of L / N.
- LEEP / NCE: the empirical joint tables of Nguyen et al. (2020) and Tran et al. (2019).
- H-score: tr(pinv(S_lw) S_b) with scikit-learn's Ledoit-Wolf shrinkage formula, D x D.
- kNN: leave-one-out majority vote on explicit Euclidean distances (ties between labels go
  to the label of the nearest voter).
"""
import json
import numpy as np


def logme_interior(F, y):
    """MacKay's fixed point in the feature space; None if it heads for an edge."""
    N, D = F.shape
    FtF = F.T @ F
    smax = np.linalg.norm(F, 2) ** 2
    alpha, beta = 1.0, 1.0
    for _ in range(1000):
        A = alpha * np.eye(D) + beta * FtF
        m = beta * np.linalg.solve(A, F.T @ y)
        gamma = D - alpha * np.trace(np.linalg.inv(A))
        t = alpha / beta
        alpha = gamma / (m @ m)
        beta = (N - gamma) / np.sum((y - F @ m) ** 2)
        if not (1e-14 * smax < alpha / beta < 1e14 * smax):
            return None
        if abs(alpha / beta - t) / t < 1e-10:
            break
    else:
        return None
    A = alpha * np.eye(D) + beta * FtF
    m = beta * np.linalg.solve(A, F.T @ y)
    _, logdet = np.linalg.slogdet(A)
    return (D / 2 * np.log(alpha) + N / 2 * np.log(beta) - 0.5 * logdet
            - beta / 2 * np.sum((y - F @ m) ** 2) - alpha / 2 * (m @ m)
            - N / 2 * np.log(2 * np.pi))


def logme_column(F, y):
    """max of L over the interior and the two edges, divided by N."""
    N, D = F.shape
    const = N / 2 * (1 + np.log(2 * np.pi))
    # alpha -> inf: y ~ N(0, I / beta), beta maximised.
    values = [N / 2 * np.log(N / (y @ y)) - const]
    # beta -> inf: y ~ N(0, F F^T / alpha), alpha maximised; needs F F^T of full rank N.
    G = F @ F.T
    if N <= D and np.linalg.matrix_rank(G) == N:
        q = y @ np.linalg.solve(G, y)
        values.append(N / 2 * np.log(N / q) - 0.5 * np.linalg.slogdet(G)[1] - const)
    interior = logme_interior(F, y)
    if interior is not None:
        values.append(interior)
    return max(values) / N


def logme(F, labels, C):
    return float(np.mean([logme_column(F, (labels == c).astype(np.float64)) for c in range(C)]))


def leep(theta, labels, C):
    N, Z = theta.shape
    joint = np.zeros((C, Z))
    for i in range(N):
        joint[labels[i]] += theta[i] / N
    cond = joint / joint.sum(axis=0, keepdims=True)
    eep = theta @ cond.T
    return float(np.mean(np.log(eep[np.arange(N), labels])))


def nce(theta, labels, C):
    N, Z = theta.shape
    z = np.argmax(theta, axis=1)
    joint = np.zeros((C, Z))
    for i in range(N):
        joint[labels[i], z[i]] += 1.0 / N
    pz = joint.sum(axis=0)
    total = 0.0
    for y in range(C):
        for k in range(Z):
            if joint[y, k] > 0:
                total += joint[y, k] * np.log(joint[y, k] / pz[k])
    return float(total)


def ledoit_wolf_shrinkage(Xc):
    n, p = Xc.shape
    X2 = Xc ** 2
    emp_cov_trace = X2.sum(axis=0) / n
    mu = emp_cov_trace.sum() / p
    beta_ = np.sum(X2.T @ X2)
    delta_ = np.sum((Xc.T @ Xc) ** 2) / n ** 2
    beta = 1.0 / (p * n) * (beta_ / n - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + p * mu ** 2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def hscore(F, labels, C):
    N, D = F.shape
    Xc = F - F.mean(axis=0)
    S = Xc.T @ Xc / N
    shrink = ledoit_wolf_shrinkage(Xc)
    S_lw = (1 - shrink) * S + shrink * np.trace(S) / D * np.eye(D)
    G = np.zeros_like(Xc)
    for c in range(C):
        G[labels == c] = Xc[labels == c].mean(axis=0)
    Sb = G.T @ G / N
    return float(np.trace(np.linalg.pinv(S_lw, rcond=1e-12) @ Sb))


def knn(F, labels, C, k):
    N = F.shape[0]
    k = min(k, N - 1)
    correct = 0
    for i in range(N):
        d = np.sum((F - F[i]) ** 2, axis=1)
        others = [j for j in np.lexsort((np.arange(N), d)) if j != i][:k]
        votes = np.zeros(C, dtype=int)
        nearest = np.full(C, N)
        for rank, j in enumerate(others):
            votes[labels[j]] += 1
            nearest[labels[j]] = min(nearest[labels[j]], rank)
        best = max(range(C), key=lambda c: (votes[c], -nearest[c]))
        correct += best == labels[i]
    return correct / N


def labels_for(rng, N, C):
    labels = np.arange(N) % C
    rng.shuffle(labels)
    return labels


def main():
    rng = np.random.default_rng(20261129)
    cases = []
    # (name, N, D, C, kind): more samples than features, fewer, square-ish, and non-negative
    # (ReLU-like) features with a dead unit, as network blocks produce.
    for name, N, D, C, kind in [
        ("tall", 40, 6, 3, "gaussian"),
        ("wide", 10, 24, 2, "gaussian"),
        ("square", 16, 16, 4, "gaussian"),
        ("relu", 30, 12, 3, "relu"),
        ("separable", 24, 5, 2, "separable"),
    ]:
        labels = labels_for(rng, N, C)
        F = rng.normal(size=(N, D))
        if kind == "relu":
            F = np.maximum(F + 0.2, 0.0)
            F[:, 3] = 0.0
        if kind == "separable":
            F[:, 0] += 3.0 * labels
        F = F.astype(np.float32).astype(np.float64)  # the Rust side reads f32 features
        Z = 5
        logits = rng.normal(size=(N, Z)) * 2.0 + np.eye(C, Z)[labels] * 1.5
        theta = np.exp(logits - logits.max(axis=1, keepdims=True))
        theta /= theta.sum(axis=1, keepdims=True)
        theta = theta.astype(np.float32).astype(np.float64)
        theta /= theta.sum(axis=1, keepdims=True)
        cases.append({
            "name": name,
            "n": N,
            "dim": D,
            "classes": C,
            "features": F.ravel().tolist(),
            "labels": labels.tolist(),
            "source_classes": Z,
            "probs": theta.ravel().tolist(),
            "logme": logme(F, labels, C),
            "leep": leep(theta, labels, C),
            "nce": nce(theta, labels, C),
            "hscore": hscore(F, labels, C),
            "knn3": knn(F, labels, C, 3),
            "knn5": knn(F, labels, C, 5),
        })
    print(json.dumps({"numpy": np.__version__, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
