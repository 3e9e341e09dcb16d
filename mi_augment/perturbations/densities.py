"""Densities over perturbation parameters, in an unconstrained space ``(N, D)``.

A density is separate from the perturbation it describes, so it can be swapped (a Gaussian mixture fitted to
real footage, a uniform box for the hand-tuned ``ColorJitter`` prior, ...). All sampling takes an optional
``torch.Generator`` and happens on the requested device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.artifact import ArtifactError, expect_dict, expect_int, expect_number, expect_tensor
from ..core.options import current
from ..core.random import cpu_draws, sampling_device
from ..core.validation import check_finite, check_positive_int


class Density:
    """Interface: ``fit(x) -> self``, ``sample(n, generator, device) -> (n, D)``, ``log_prob(x) -> (n,)``."""

    kind: str = "density"
    dim: int

    def fit(self, x: Tensor) -> Density:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def mean(self) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def covariance(self) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    # -- serialisation: JSON-able meta + tensors --
    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        raise NotImplementedError  # pragma: no cover

    @staticmethod
    def from_state(meta: dict[str, Any], tensors: dict[str, Tensor], *, path: Any = "<state>",
                   field: str = "meta.density") -> Density:
        """Rebuild a density from :meth:`state` output, validated: unknown or missing fields, wrong types or
        shapes, non-finite or huge values, weights that are negative or do not sum to 1 and covariances that
        are not positive definite raise :class:`~mi_augment.core.artifact.ArtifactError` naming ``path`` and the
        field. ``tensors`` are the density's own (without the ``density.`` prefix of a model file)."""
        meta = expect_dict(meta, path, field, required=("kind",))
        kind = meta["kind"]
        if kind == GaussianMixtureDensity.kind:
            return GaussianMixtureDensity._from_state(meta, tensors, path, field)
        if kind == UniformDensity.kind:
            return UniformDensity._from_state(meta, tensors, path, field)
        raise ArtifactError(f"{path}: {field}.kind is {str(kind)[:60]!r}; expected one of "
                            f"{[GaussianMixtureDensity.kind, UniformDensity.kind]}")


_CPU = torch.device("cpu")

# Caps on loaded densities: parameter vectors are low-dimensional, and values beyond this magnitude (in the
# unconstrained units of the models: log-gains, degrees, percent of the image side) only produce NaN images.
MAX_DIM = 64
MAX_COMPONENTS = 64
MAX_ABS_VALUE = 1e6


def _check_tensor_names(tensors: dict[str, Tensor], allowed: tuple[str, ...], path: Any, field: str) -> None:
    unknown = sorted(set(tensors) - set(allowed))
    if unknown:
        raise ArtifactError(f"{path}: {field} has unknown tensor(s) {unknown}; expected {list(allowed)}")


def _check_samples(x: Tensor, dim: int | None, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (N, D), got {getattr(x, 'shape', type(x))}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have D={dim} columns, got {x.shape[1]}")
    check_finite(x, name)
    return x


class GaussianMixtureDensity(Density):
    """Full-covariance Gaussian mixture; ``n_components="bic"`` picks the count (1..max_components) by BIC.

    Fitting uses scikit-learn's EM (CPU, float64); the fitted weights, means and Cholesky factors are kept
    as tensors, so sampling and ``log_prob`` run on any device without scikit-learn.
    """

    kind = "gaussian_mixture"

    def __init__(self, n_components: int | str = "bic", max_components: int = 6, reg_covar: float = 1e-6,
                 random_state: int = 0):
        if n_components != "bic":
            check_positive_int(n_components, "n_components")
        check_positive_int(max_components, "max_components")
        self.n_components = n_components
        self.max_components = max_components
        self.reg_covar = float(reg_covar)
        self.random_state = int(random_state)
        self.weights: Tensor | None = None
        self.means: Tensor | None = None
        self.scale_tril: Tensor | None = None
        self.bic_scores: dict[int, float] = {}

    @classmethod
    def from_parameters(cls, weights: Tensor, means: Tensor, covariances: Tensor) -> GaussianMixtureDensity:
        d = cls(n_components=int(weights.numel()))
        d.weights = (weights / weights.sum()).double()
        d.means = means.double().reshape(weights.numel(), -1)
        d.scale_tril = torch.linalg.cholesky(covariances.double())
        return d

    @property
    def dim(self) -> int:
        self._check_fitted()
        return int(self.means.shape[1])

    @property
    def components(self) -> int:
        self._check_fitted()
        return int(self.weights.numel())

    def _check_fitted(self) -> None:
        if self.weights is None:
            raise RuntimeError("this GaussianMixtureDensity is not fitted; call fit(x) first")

    def fit(self, x: Tensor) -> GaussianMixtureDensity:
        from sklearn.mixture import GaussianMixture

        x = _check_samples(x, None)
        n, d = x.shape
        if n < 2:
            raise ValueError(f"need at least 2 observations to fit a density, got {n}")
        data = x.detach().cpu().double().numpy()
        if self.n_components == "bic":
            # Each full-covariance component costs d + d(d+1)/2 + 1 parameters; keep >= 5 observations each.
            per = d + d * (d + 1) // 2 + 1
            kmax = max(1, min(self.max_components, n // max(5, per)))
            candidates = range(1, kmax + 1)
        else:
            candidates = [min(int(self.n_components), n)]
        best, best_bic = None, math.inf
        self.bic_scores = {}
        for k in candidates:
            gm = GaussianMixture(k, covariance_type="full", reg_covar=self.reg_covar, n_init=2,
                                 random_state=self.random_state).fit(data)
            bic = float(gm.bic(data))
            self.bic_scores[k] = bic
            if bic < best_bic:
                best, best_bic = gm, bic
        self.weights = torch.from_numpy(best.weights_.copy())
        self.means = torch.from_numpy(best.means_.copy())
        self.scale_tril = torch.linalg.cholesky(torch.from_numpy(best.covariances_.copy()))
        return self

    def sample(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
        """``n`` draws ``(n, D)`` float32: a component per draw (``torch.multinomial`` on the weights), then its
        mean plus its Cholesky factor times standard normals, all from ``generator`` on its device.

        The float32 weights, means and factors are converted once per device and kept while the fitted
        tensors are unchanged. On the CPU (outside ``kernel_options(fast_paths=False)``) the component draw
        is ``torch.multinomial``'s own one-sample algorithm written out (``argmax(w / q)`` with ``q ~ Exp(1)``
        from ``Tensor.exponential_``): the same generator stream and components without its input checks,
        which cost more than the draw for one image's few samples.

        Example:
            >>> d = GaussianMixtureDensity.from_parameters(torch.ones(2), torch.zeros(2, 3), torch.eye(3).expand(2, 3, 3))
            >>> d.sample(4, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([4, 3])
        """
        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        dev = sampling_device(generator, device)
        w, means, tril = self._float32(dev)
        if n and dev.type == "cpu" and current().fast_paths:
            q = torch.empty(n, w.shape[0]).exponential_(generator=generator)
            comp = torch.from_numpy(np.argmax(w.numpy() / q.numpy(), axis=1))  # float32 division, first maximum
        else:
            comp = torch.multinomial(w.expand(max(n, 1), -1), 1, replacement=True, generator=generator)[:n, 0]
        eps = torch.randn(n, means.shape[1], generator=generator, device=dev)
        out = means[comp] + (tril[comp] @ eps.unsqueeze(-1)).squeeze(-1)
        return out.to(device) if device is not None else out

    def sample_rows(self, n: int, generator: torch.Generator | None = None) -> list[list[float]]:
        """:meth:`sample` on the CPU as Python numbers, for a few draws (one image's views): the same generator
        stream and components; the mean plus the Cholesky factor times the normals summed in float64 and
        rounded to float32 (:meth:`sample` sums in float32: the two agree within float32 rounding of the
        largest term). :meth:`sample_array`'s values as lists.

        Example:
            >>> d = GaussianMixtureDensity.from_parameters(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
            >>> len(d.sample_rows(3, torch.Generator().manual_seed(0)))
            3
        """
        return self.sample_array(n, generator).tolist()

    def sample_array(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """:meth:`sample_rows` as a float32 numpy array ``(n, D)``: each row the component's mean plus its
        Cholesky factor times the normals, the products (exact in float64) summed left to right in float64
        (``np.add.accumulate``: the order of a Python ``sum``), then rounded to float32 once.

        Example:
            >>> d = GaussianMixtureDensity.from_parameters(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
            >>> d.sample_array(3, torch.Generator().manual_seed(0)).shape
            (3, 2)
        """
        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"sample_rows draws on the CPU; got a generator on {generator.device}")
        if n == 0:  # multinomial draws one row even for none: the tensor form keeps the stream as it is
            return self.sample(0, generator=generator).numpy()
        self._float32(_CPU)
        w, means, tril = self._float32_cache[3]
        # sample's draws (multinomial's exponentials, then the normals), in place into this thread's buffers
        q = cpu_draws((n, w.shape[0]), generator, "exponential")
        comps = np.argmax(w / q.numpy(), axis=1)  # sample's components (multinomial's draw)
        eps = cpu_draws((n, means.shape[1]), generator, "normal").numpy()  # float32, taken exactly to float64 below
        sums = np.add.accumulate(tril[comps] * eps[:, None, :], axis=2)[:, :, -1]
        return (means[comps] + sums).astype(np.float32)

    def _float32(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The weights, means and Cholesky factors in float32 on ``device``, converted once while the fitted
        tensors (the same objects, unmodified) stay (with, for the CPU rows, the float32 weights and the means' and
        factors' float32 values in float64 as numpy arrays)."""
        source = (self.weights, self.means, self.scale_tril)
        key = (device, *(id(t) for t in source), *(t._version for t in source))
        cached = getattr(self, "_float32_cache", None)
        if cached is None or cached[0] != key:
            converted = tuple(t.to(device, torch.float32) for t in source)
            cached = (key, converted, source, (converted[0].cpu().numpy(),
                                               *(t.cpu().double().numpy() for t in converted[1:])))
            self._float32_cache = cached
        return cached[1]

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_fitted()
        x = _check_samples(x, self.dim)
        xd = x.double()
        mu = self.means.to(x.device)
        lt = self.scale_tril.to(x.device)
        diff = (xd[:, None, :] - mu[None]).unsqueeze(-1)  # (N, K, D, 1)
        sol = torch.linalg.solve_triangular(lt[None].expand(xd.shape[0], -1, -1, -1), diff, upper=False)
        maha = sol.squeeze(-1).pow(2).sum(-1)
        logdet = torch.log(torch.diagonal(lt, dim1=-2, dim2=-1)).sum(-1)
        comp = -0.5 * maha - logdet[None] - 0.5 * self.dim * math.log(2 * math.pi)
        out = torch.logsumexp(comp + torch.log(self.weights.to(x.device))[None], dim=1)
        return out.to(x.dtype)

    def mean(self) -> Tensor:
        self._check_fitted()
        return (self.weights[:, None] * self.means).sum(0)

    def covariance(self) -> Tensor:
        self._check_fitted()
        m = self.mean()
        covs = self.scale_tril @ self.scale_tril.transpose(-1, -2)
        d = self.means - m
        return (self.weights[:, None, None] * (covs + d[:, :, None] * d[:, None, :])).sum(0)

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        self._check_fitted()
        meta = {"kind": self.kind, "n_components": self.n_components, "max_components": self.max_components,
                "reg_covar": self.reg_covar, "random_state": self.random_state,
                "bic_scores": {str(k): v for k, v in self.bic_scores.items()}}
        return meta, {"weights": self.weights, "means": self.means, "scale_tril": self.scale_tril}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor], path: Any = "<state>",
                    field: str = "meta.density") -> GaussianMixtureDensity:
        meta = expect_dict(meta, path, field, keys=("kind", "n_components", "max_components", "reg_covar",
                                                   "random_state", "bic_scores"))
        n_components = meta.get("n_components", "bic")
        if n_components != "bic":
            expect_int(n_components, path, f"{field}.n_components", 1, MAX_COMPONENTS)
        d = cls(n_components=n_components,
                max_components=expect_int(meta.get("max_components", 6), path, f"{field}.max_components", 1,
                                          MAX_COMPONENTS),
                reg_covar=expect_number(meta.get("reg_covar", 1e-6), path, f"{field}.reg_covar", 0.0, 1e3),
                random_state=expect_int(meta.get("random_state", 0), path, f"{field}.random_state", 0, 2**32 - 1))
        _check_tensor_names(tensors, ("weights", "means", "scale_tril"), path, field)
        tfield = field.replace("meta.", "tensors.", 1)
        means = expect_tensor(tensors, path, "means", (None, None), field=f"{tfield}.means",
                              low=-MAX_ABS_VALUE, high=MAX_ABS_VALUE)
        k, dim = means.shape
        if not (1 <= k <= MAX_COMPONENTS and 1 <= dim <= MAX_DIM):
            raise ArtifactError(f"{path}: {tfield}.means must be (K, D) with 1 <= K <= {MAX_COMPONENTS} and "
                                f"1 <= D <= {MAX_DIM}, got {tuple(means.shape)}")
        weights = expect_tensor(tensors, path, "weights", (k,), field=f"{tfield}.weights", low=0.0, high=1.0)
        if abs(float(weights.double().sum()) - 1.0) > 1e-6:
            raise ArtifactError(f"{path}: {tfield}.weights must sum to 1, got {float(weights.double().sum())}")
        tril = expect_tensor(tensors, path, "scale_tril", (k, dim, dim), field=f"{tfield}.scale_tril",
                             low=-MAX_ABS_VALUE, high=MAX_ABS_VALUE)
        diagonal = torch.diagonal(tril, dim1=-2, dim2=-1)
        if bool((tril.triu(1) != 0).any()) or not bool((diagonal > 1e-150).all()):
            raise ArtifactError(f"{path}: {tfield}.scale_tril must be lower-triangular Cholesky factors with a "
                                "positive diagonal (positive-definite covariances)")
        d.weights, d.means, d.scale_tril = weights.double(), means.double(), tril.double()
        scores = expect_dict(meta.get("bic_scores", {}), path, f"{field}.bic_scores")
        if len(scores) > MAX_COMPONENTS or not all(str(a).isdigit() and len(str(a)) <= 3 for a in scores):
            raise ArtifactError(f"{path}: {field}.bic_scores must map at most {MAX_COMPONENTS} component counts "
                                "to scores")
        d.bic_scores = {int(a): expect_number(b, path, f"{field}.bic_scores.{a}") for a, b in scores.items()}
        return d

    def __repr__(self) -> str:
        if self.weights is None:
            return f"GaussianMixtureDensity(n_components={self.n_components!r}, unfitted)"
        return f"GaussianMixtureDensity(components={self.components}, dim={self.dim})"


class UniformDensity(Density):
    """Independent uniforms on a box ``[low_i, high_i]`` (a degenerate side ``low == high`` is a constant)."""

    kind = "uniform"

    def __init__(self, low: Tensor | list[float], high: Tensor | list[float]):
        low_t = torch.as_tensor(low, dtype=torch.float64).flatten()
        high_t = torch.as_tensor(high, dtype=torch.float64).flatten()
        if low_t.shape != high_t.shape or bool((high_t < low_t).any()):
            raise ValueError(f"UniformDensity needs low <= high elementwise and equal lengths, got {low} and {high}")
        self.low, self.high = low_t, high_t

    @property
    def dim(self) -> int:
        return int(self.low.numel())

    def fit(self, x: Tensor) -> UniformDensity:
        x = _check_samples(x, self.dim)
        self.low, self.high = x.double().min(0).values.cpu(), x.double().max(0).values.cpu()
        return self

    def sample(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
        n = check_positive_int(n, "n", minimum=0)
        dev = sampling_device(generator, device)
        u = torch.rand(n, self.dim, generator=generator, device=dev)
        lo, hi = self.low.to(dev, torch.float32), self.high.to(dev, torch.float32)
        out = lo + u * (hi - lo)
        return out.to(device) if device is not None else out

    def log_prob(self, x: Tensor) -> Tensor:
        x = _check_samples(x, self.dim)
        lo, hi = self.low.to(x.device), self.high.to(x.device)
        width = hi - lo
        free = width > 0
        inside = ((x.double() >= lo) & (x.double() <= hi)) | ~free
        # Degenerate sides are treated as point masses (contribute 0 to the log density at the point).
        on_point = torch.where(free, torch.ones_like(inside), x.double() == lo)
        lp = -torch.log(width[free]).sum() if bool(free.any()) else torch.zeros((), dtype=torch.float64)
        ok = (inside & on_point).all(dim=1)
        return torch.where(ok, lp.to(x.device).expand(x.shape[0]), torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)).to(x.dtype)

    def mean(self) -> Tensor:
        return (self.low + self.high) / 2

    def covariance(self) -> Tensor:
        return torch.diag((self.high - self.low) ** 2 / 12)

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"kind": self.kind}, {"low": self.low, "high": self.high}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], tensors: dict[str, Tensor], path: Any = "<state>",
                    field: str = "meta.density") -> UniformDensity:
        expect_dict(meta, path, field, keys=("kind",))
        _check_tensor_names(tensors, ("low", "high"), path, field)
        tfield = field.replace("meta.", "tensors.", 1)
        low = expect_tensor(tensors, path, "low", (None,), field=f"{tfield}.low", low=-MAX_ABS_VALUE,
                            high=MAX_ABS_VALUE)
        high = expect_tensor(tensors, path, "high", (low.shape[0],), field=f"{tfield}.high",
                             low=-MAX_ABS_VALUE, high=MAX_ABS_VALUE)
        if not 1 <= low.shape[0] <= MAX_DIM:
            raise ArtifactError(f"{path}: {tfield}.low must have 1 to {MAX_DIM} entries, got {low.shape[0]}")
        if bool((high < low).any()):
            raise ArtifactError(f"{path}: {tfield}.high must be >= low elementwise")
        return cls(low, high)

    def __repr__(self) -> str:
        return f"UniformDensity(dim={self.dim})"


def as_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
