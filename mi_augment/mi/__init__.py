"""Mutual-information estimators over paired samples, batched and device-agnostic.

Every estimator takes ``x (..., N, Dx)`` and ``y (..., N, Dy)`` (a 1-D tensor ``(N,)`` is one problem of
scalar samples) and returns MI in nats with shape ``(...)`` on the inputs' device:

* :func:`histogram_mi`: plug-in joint histogram of bounded scalar samples (pixels), hard or soft-binned.
* :func:`ksg_mi`: Kraskov-Stogbauer-Grassberger kNN estimator (variants 1 and 2).
* :func:`kl3_mi`: ``H(X) + H(Y) - H(X, Y)`` from three Kozachenko-Leonenko entropy estimates.
* :func:`gaussian_mi`: closed form from covariance log-determinants, with Ledoit-Wolf shrinkage.

:func:`pairwise_mi` scores all pairs of a set of trajectories. ``docs/mi_estimators.md`` gives the measured
bias and variance of each estimator and which one to use when.
"""

from .gaussian import gaussian_mi
from .histogram import histogram_mi
from .knn import kl3_mi, ksg_mi
from .pairwise import pairwise_mi

ESTIMATORS = {"histogram": histogram_mi, "ksg": ksg_mi, "kl3": kl3_mi, "gaussian": gaussian_mi}

__all__ = ["ESTIMATORS", "gaussian_mi", "histogram_mi", "kl3_mi", "ksg_mi", "pairwise_mi"]
