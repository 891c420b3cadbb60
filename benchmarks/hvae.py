"""HVAE figures on digits (thesis chapter 3): training time, ELBO, KL per layer, how much each
latent knows of the class, and how well LLR^{>2} separates digits from an OOD set.

- probe: a logistic regression on 1,000 train points' latent, accuracy on the other 437;
- ARI: k-means (10 clusters) of the latent against the true classes;
- OOD: digits test split vs 8x8 grey patches of scikit-learn's two sample photographs; AUROC of
  LLR^{>2} (higher = OOD) and of -ELBO, for comparison (Havtorn et al.: LLR beats the ELBO).

    .venv/bin/python benchmarks/hvae.py       # about a minute on 2 cores
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from alsys.data import load_digits
from alsys.embed.hvae import hvae_outputs, hvae_preset, prepare_inputs, train_hvae
from alsys.hvae_figures import photo_patches


def main() -> None:
    torch.set_num_threads(2)
    data = load_digits()
    config = hvae_preset("digits", "images")
    x = prepare_inputs(data.train_images, "images").x
    start = time.perf_counter()
    model, history = train_hvae(x, config, seed=0, show_progress=False)
    seconds = time.perf_counter() - start
    kl = history["kl"][-1]
    threads = torch.get_num_threads()
    print(f"HVAE on digits images, {config.epochs} epochs: {seconds:.1f} s on {threads} threads")
    print(f"ELBO per point: epoch 1 {history['elbo'][0]:.1f}, last {history['elbo'][-1]:.1f} nats")
    print(
        "KL per layer, last epoch (nats): " + ", ".join(f"z{j} {v:.2f}" for j, v in enumerate(kl))
    )
    floors = [config.free_bits * d for d in config.latent_dims]
    print(
        "free-bits floor per layer (nats):  "
        + ", ".join(f"z{j} {v:.2f}" for j, v in enumerate(floors))
    )

    out = hvae_outputs(model, x, seed=0)
    y = data.train_labels
    print(f"\n{'latent':<8} {'probe acc':>9} {'k-means ARI':>11}")
    for j in range(3):
        for mode in ("mu", "rp"):
            z = out[f"{mode}_z{j}"]
            probe = (
                LogisticRegression(max_iter=3000).fit(z[:1000], y[:1000]).score(z[1000:], y[1000:])
            )
            ari = adjusted_rand_score(y, KMeans(10, n_init=3, random_state=0).fit_predict(z))
            name = f"z{j} {'mean' if mode == 'mu' else 'rp'}"
            print(f"{name:<8} {probe:>9.3f} {ari:>11.3f}")

    test = prepare_inputs(data.test_images, "images").x
    assert data.test_images is not None
    ood = prepare_inputs(photo_patches(len(data.test_labels), (8, 8), 1, seed=0), "images").x
    for estimator in ("mean", "iw"):
        inside = hvae_outputs(model, test, seed=1, estimator=estimator)
        outside = hvae_outputs(model, ood, seed=1, estimator=estimator)
        truth = np.r_[np.zeros(len(test)), np.ones(len(ood))]
        llr = roc_auc_score(truth, np.r_[inside["llr2"], outside["llr2"]])
        elbo = roc_auc_score(truth, -np.r_[inside["elbo"], outside["elbo"]])
        print(
            f"\nOOD ({estimator}): digits test vs photo patches, {len(ood)} each: "
            f"AUROC LLR^>2 {llr:.3f}, AUROC -ELBO {elbo:.3f}; "
            f"median LLR^>2 in {np.median(inside['llr2']):.1f}, "
            f"out {np.median(outside['llr2']):.1f}"
        )


if __name__ == "__main__":
    main()
