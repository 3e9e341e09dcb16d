"""Batched nearest-neighbour search and radius counting under the maximum norm.

All functions work on a batch of independent problems ``z (B, N, D)``; a sample is never its own
neighbour. Two search strategies give identical answers:

* ``brute``: the ``(N, N)`` distance matrix per problem (chunked over problems and rows), then the k
  smallest per row. Cost ``O(B N^2 D)``; best for small ``N``.
* ``band``: sort every problem along its first coordinate and scan neighbours in order of sorted offset,
  keeping the k smallest distances per sample; stop once every sample is *proven* exact (its k-th distance is
  no larger than the first-coordinate gap to the nearest unvisited sample, and the max-norm distance is at
  least the gap in any single coordinate). The few samples left are redone by brute force. Cost about
  ``O(B N w D)``, ``w`` the number of samples inside the k-th neighbour radius along one coordinate: ``k`` in
  1-D, about ``sqrt(k N)`` in 2-D. Best for large ``N``.

Distances are always computed as ``|a - b|`` in the working dtype, and radius counts in 1-D use a binary search
over exactly those values (rounding is monotone), so counts are consistent with the radii bit for bit,
including the neighbour that lies exactly on the radius.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._common import DEFAULT_MAX_ELEMENTS, chunks


def maxnorm_distances(q: Tensor, z: Tensor) -> Tensor:
    """Max-norm distances ``(B, M, N)`` between queries ``q (B, M, D)`` and samples ``z (B, N, D)``,
    built one coordinate at a time so the temporary never exceeds ``B * M * N`` elements."""
    d = (q[:, :, None, 0] - z[:, None, :, 0]).abs()
    for c in range(1, z.shape[-1]):
        torch.maximum(d, (q[:, :, None, c] - z[:, None, :, c]).abs(), out=d)
    return d


def _exclude_self(d: Tensor, rows: slice) -> Tensor:
    """Set the self-distance of query rows ``rows`` (a slice of ``range(N)``) to infinity, in place."""
    m = rows.stop - rows.start
    idx = torch.arange(m, device=d.device)
    d[:, idx, idx + rows.start] = math.inf
    return d


def _merge_smallest(a: list[Tensor], b: list[Tensor], k: int) -> list[Tensor]:
    """Elementwise merge of two sorted lists of tensors, keeping the ``k`` smallest: the r-th smallest of the
    union is the minimum over splits ``i + j = r`` of ``max(a_i, b_j)``."""
    out = []
    for r in range(1, min(k, len(a) + len(b)) + 1):
        best = None
        for i in range(max(0, r - len(b)), min(r, len(a)) + 1):
            j = r - i
            term = b[j - 1] if i == 0 else a[i - 1] if j == 0 else torch.maximum(a[i - 1], b[j - 1])
            best = term if best is None else torch.minimum(best, term)
        out.append(best)
    return out


def smallest_k(d: Tensor, k: int) -> list[Tensor]:
    """The ``k`` smallest values along the last dimension of ``d``, ascending, as ``k`` tensors of shape
    ``d.shape[:-1]`` (``inf`` where the dimension holds fewer than ``k`` values).

    A tournament of elementwise min/max merges over halves of the last dimension: about ``k**2 / 2`` passes
    over ever smaller tensors and no per-row sorting, several times faster than ``topk`` on CPU when rows are
    short and numerous.
    """
    lists = [d]
    while lists[0].shape[-1] > 1:
        if lists[0].shape[-1] % 2:
            pad = torch.full((*d.shape[:-1], 1), math.inf, dtype=d.dtype, device=d.device)
            lists = [torch.cat([t, pad], dim=-1) for t in lists]
        half = lists[0].shape[-1] // 2
        lists = _merge_smallest([t[..., :half] for t in lists], [t[..., half:] for t in lists], k)
    out = [t[..., 0] for t in lists]
    while len(out) < k:
        out.append(torch.full_like(out[0], math.inf))
    return out


def knn_brute(
    z: Tensor, k: int, need_index: bool = True, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> tuple[Tensor, Tensor | None]:
    """k-th neighbour distance ``(B, N)`` and neighbour indices ``(B, N, k)`` (nearest first) by brute force."""
    b, n, _ = z.shape
    radius = z.new_empty(b, n)
    index = torch.empty(b, n, k, dtype=torch.long, device=z.device) if need_index else None
    rows_per_chunk = max(1, min(n, max_elements // n))
    problems = max(1, max_elements // (rows_per_chunk * n))
    for bs in chunks(b, problems):
        for rs in chunks(n, rows_per_chunk):
            d = _exclude_self(maxnorm_distances(z[bs, rs], z[bs]), rs)
            if index is None and n <= 128:  # short rows: the min/max tournament beats topk
                radius[bs, rs] = smallest_k(d, k)[-1]
            else:
                vals, idx = d.topk(k, dim=-1, largest=False, sorted=True)
                radius[bs, rs] = vals[..., -1]
                if index is not None:
                    index[bs, rs] = idx
    return radius, index


def _knn_rows_brute(zs: Tensor, bi: Tensor, pi: Tensor, k: int, max_elements: int) -> tuple[Tensor, Tensor]:
    """Brute-force k nearest neighbours of the individual samples ``zs[bi, pi]`` among all of ``zs[bi]``."""
    n = zs.shape[1]
    vals_out = zs.new_empty(bi.shape[0], k)
    idx_out = torch.empty(bi.shape[0], k, dtype=torch.long, device=zs.device)
    per_chunk = max(1, max_elements // (n * zs.shape[2]))
    for s in chunks(bi.shape[0], per_chunk):
        ref = zs[bi[s]]  # (m, N, D)
        d = (ref - zs[bi[s], pi[s]][:, None, :]).abs().amax(-1)
        d[torch.arange(d.shape[0], device=d.device), pi[s]] = math.inf
        vals, idx = d.topk(k, dim=-1, largest=False, sorted=True)
        vals_out[s], idx_out[s] = vals, idx
    return vals_out, idx_out


def _insert(vals: Tensor, index: Tensor | None, sl: slice, cand: Tensor, cand_index: Tensor | None) -> None:
    """Insert candidate distances ``cand (B, M)`` into the sorted running lists ``vals (k, B, N)[:, :, sl]``
    (and their sample indices), keeping the k smallest, in place."""
    k = vals.shape[0]
    for level in range(k):
        current = vals[level, :, sl]
        if index is None:
            if level < k - 1:
                smaller = torch.minimum(current, cand)
                cand = torch.maximum(current, cand)
                current.copy_(smaller)
            else:
                current.copy_(torch.minimum(current, cand))
        else:
            take = cand < current
            new_vals = torch.where(take, cand, current)
            cand = torch.where(take, current, cand)
            current_index = index[level, :, sl]
            new_index = torch.where(take, cand_index, current_index)
            cand_index = torch.where(take, current_index, cand_index)
            current.copy_(new_vals)
            current_index.copy_(new_index)


def knn_band(
    z: Tensor, k: int, *, need_index: bool = True, max_offset: int | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[Tensor, Tensor | None]:
    """Same result as :func:`knn_brute`, by a proven-exact scan of sorted neighbours along the first coordinate.

    Samples are sorted by their first coordinate; the scan visits offsets ``o = 1, 2, ...`` in that order,
    computes the distance between every sample and the sample ``o`` positions to its right (which also serves
    that sample's left neighbour), and keeps the k smallest distances per sample in a small sorted list, all
    with whole-batch elementwise operations. After ``o`` offsets, a sample's list is exact once its k-th
    distance is no larger than the first-coordinate gap to the nearest unvisited sample (any unvisited sample
    is at least that far in max norm). The scan stops when (almost) every sample is proven; the few left are
    redone by brute force. Cost ``O(B N w)`` where ``w`` is about the number of samples within the k-th
    neighbour radius along one coordinate (``k`` in 1-D, about ``sqrt(k N)`` in 2-D).
    """
    b, n, d = z.shape
    device = z.device
    if max_offset is None:
        max_offset = n - 1
    max_offset = max(1, min(max_offset, n - 1))
    order = z[..., 0].argsort(dim=-1)
    zs = z.gather(1, order[..., None].expand(-1, -1, d))
    first = zs[..., 0]
    vals = torch.full((k, b, n), math.inf, dtype=z.dtype, device=device)
    index = torch.zeros((k, b, n), dtype=torch.long, device=device) if need_index else None
    positions = torch.arange(n, device=device).expand(b, n)
    unproven = torch.ones(b, n, dtype=torch.bool, device=device)
    inf = torch.full_like(first, math.inf)
    check_every = max(1, min(8, k))
    for o in range(1, max_offset + 1):
        m = n - o
        dist = (zs[:, o:, 0] - zs[:, :m, 0]).abs()
        for c in range(1, d):
            torch.maximum(dist, (zs[:, o:, c] - zs[:, :m, c]).abs(), out=dist)
        left, right = slice(0, m), slice(o, n)
        # Sample p gains p + o as a right neighbour; sample p + o gains p as a left neighbour.
        _insert(vals, index, left, dist, positions[:, o:] if need_index else None)
        _insert(vals, index, right, dist, positions[:, :m] if need_index else None)
        if o % check_every == 0 or o == max_offset:
            gap_right = torch.cat([first[:, o + 1:] - first[:, : n - o - 1], inf[:, : o + 1]], dim=1)
            gap_left = torch.cat([inf[:, : o + 1], first[:, o + 1:] - first[:, : n - o - 1]], dim=1)
            unproven = vals[-1] > torch.minimum(gap_left, gap_right)
            remaining = int(unproven.sum())
            # Stop when brute force on the remaining samples costs less than scanning about 8 more offsets.
            if remaining == 0 or remaining * n * d <= 8 * b * n * (d + 3 * k):
                break
    radius = vals[-1]
    nbr = index.permute(1, 2, 0) if need_index else None
    if bool(unproven.any()):
        bi, pi = unproven.nonzero(as_tuple=True)
        v, idx = _knn_rows_brute(zs, bi, pi, k, max_elements)
        radius[bi, pi] = v[:, -1]
        if nbr is not None:
            nbr[bi, pi] = idx
    radius_out = torch.empty_like(radius).scatter_(1, order, radius)
    if nbr is None:
        return radius_out, None
    nbr_orig = order.gather(1, nbr.reshape(b, -1)).reshape(b, n, k)
    nbr_out = torch.empty_like(nbr_orig).scatter_(1, order[..., None].expand(-1, -1, k), nbr_orig)
    return radius_out, nbr_out


def knn(
    z: Tensor, k: int, method: str = "auto", *, need_index: bool = True, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> tuple[Tensor, Tensor | None]:
    """k-th neighbour max-norm distance ``(B, N)`` and (if ``need_index``) neighbour indices ``(B, N, k)``,
    nearest first, of ``z (B, N, D)``. ``method`` is ``"brute"``, ``"band"`` or ``"auto"`` (band for large
    ``N``, brute force for ``N < 128``; both are exact, the choice is only about speed)."""
    n = z.shape[1]
    if method == "auto":
        method = "band" if n >= 128 else "brute"
    if method == "band":
        return knn_band(z, k, need_index=need_index, max_elements=max_elements)
    return knn_brute(z, k, need_index, max_elements)


def _sorted_extents(s: Tensor, r: Tensor, strict: bool) -> tuple[Tensor, Tensor]:
    """For sorted scalars ``s (B, N)`` and radii ``r (B, N)`` (in the same sorted order): how many samples on
    the left and on the right of each one lie within its radius (``<`` if ``strict`` else ``<=``).

    Binary search over the distances ``|s_p - s_q|`` themselves, which are monotone along the sorted order
    (rounding is monotone), in ``O(B N log N)``.
    """
    b, n = s.shape
    pos = torch.arange(n, device=s.device).expand(b, n)
    steps = max(1, int(math.ceil(math.log2(n + 1))))

    def inside(dist: Tensor) -> Tensor:
        return dist < r if strict else dist <= r

    # Right side: first position q > p whose distance is outside the radius.
    lo, hi = pos + 1, torch.full_like(pos, n)
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        ok = inside(s.gather(1, mid.clamp(max=n - 1)) - s)
        lo = torch.where(active & ok, mid + 1, lo)
        hi = torch.where(active & ~ok, mid, hi)
    right = lo - pos - 1
    # Left side: first position q <= p from which every distance up to p is inside the radius.
    lo, hi = torch.zeros_like(pos), pos.clone()
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        ok = inside(s - s.gather(1, mid))
        hi = torch.where(active & ok, mid, hi)
        lo = torch.where(active & ~ok, mid + 1, lo)
    return pos - lo, right


def count_within_1d(u: Tensor, radius: Tensor, strict: bool) -> Tensor:
    """Number of other samples ``j`` with ``|u_i - u_j| < radius_i`` (``<=`` if not ``strict``), ``(B, N)``,
    for scalar samples ``u (B, N)``: one sort and a binary search on both sides of every sample."""
    s, order = u.sort(dim=-1)
    left, right = _sorted_extents(s, radius.gather(1, order), strict)
    counts = (left + right).to(u.dtype)
    return torch.empty_like(counts).scatter_(1, order, counts)


def _count_brute(u: Tensor, radius: Tensor, strict: bool, max_elements: int) -> Tensor:
    b, n, _ = u.shape
    counts = u.new_empty(b, n)
    rows_per_chunk = max(1, min(n, max_elements // n))
    problems = max(1, max_elements // (rows_per_chunk * n))
    for bs in chunks(b, problems):
        for rs in chunks(n, rows_per_chunk):
            dist = _exclude_self(maxnorm_distances(u[bs, rs], u[bs]), rs)
            r = radius[bs, rs, None]
            counts[bs, rs] = (dist < r if strict else dist <= r).sum(-1).to(u.dtype)
    return counts


def _count_band(u: Tensor, radius: Tensor, strict: bool, max_elements: int) -> Tensor:
    """:func:`count_within` for ``D > 1`` by a scan over sorted offsets along the first coordinate.

    A sample can only be within the (max-norm) radius if it is within it along the first coordinate, so after
    sorting, sample p needs offsets up to its first-coordinate extents only (found by binary search). Offsets
    are scanned up to a cap covering most samples; samples whose extent exceeds it are recounted by brute force.
    """
    b, n, d = u.shape
    order = u[..., 0].argsort(dim=-1)
    us = u.gather(1, order[..., None].expand(-1, -1, d))
    r = radius.gather(1, order)
    left, right = _sorted_extents(us[..., 0], r, strict)
    extent = torch.maximum(left, right)
    # Cap the scan near the 95th percentile extent: beyond it, brute force on the few long rows is cheaper.
    cap = int(extent.flatten().float().quantile(0.95)) if extent.numel() <= 2**24 else int(extent.max())
    cap = max(1, min(n - 1, cap))
    counts = torch.zeros(b, n, dtype=torch.long, device=u.device)
    for o in range(1, cap + 1):
        m = n - o
        dist = (us[:, o:, 0] - us[:, :m, 0]).abs()
        for c in range(1, d):
            torch.maximum(dist, (us[:, o:, c] - us[:, :m, c]).abs(), out=dist)
        counts[:, :m] += dist < r[:, :m] if strict else dist <= r[:, :m]
        counts[:, o:] += dist < r[:, o:] if strict else dist <= r[:, o:]
    counts = counts.to(u.dtype)
    long_rows = extent > cap
    if bool(long_rows.any()):
        bi, pi = long_rows.nonzero(as_tuple=True)
        per_chunk = max(1, max_elements // (n * d))
        for sl in chunks(bi.shape[0], per_chunk):
            ref = us[bi[sl]]  # (m, N, D)
            dist = (ref - us[bi[sl], pi[sl]][:, None, :]).abs().amax(-1)
            dist[torch.arange(dist.shape[0], device=dist.device), pi[sl]] = math.inf
            rr = r[bi[sl], pi[sl]][:, None]
            counts[bi[sl], pi[sl]] = (dist < rr if strict else dist <= rr).sum(-1).to(u.dtype)
    return torch.empty_like(counts).scatter_(1, order, counts)


def count_within(
    u: Tensor, radius: Tensor, strict: bool, method: str = "auto", max_elements: int = DEFAULT_MAX_ELEMENTS
) -> Tensor:
    """Number of other samples within ``radius (B, N)`` of each sample of ``u (B, N, D)`` (max norm):
    binary search in 1-D; otherwise a sorted-offset scan (``"band"``, the default for ``N >= 128``) or
    brute force (``"brute"``). All give the same counts."""
    b, n, d = u.shape
    if d == 1:
        return count_within_1d(u[..., 0], radius, strict)
    if method == "brute" or (method == "auto" and n < 128):
        return _count_brute(u, radius, strict, max_elements)
    return _count_band(u, radius, strict, max_elements)
