"""Cross-image positives: for each sample, a partner from other images chosen by pointwise MI.

The paper's "twin = highest-MI partner" on image datasets (NNCLR's nearest-neighbour positive is the
``"max"`` policy). A :class:`SupportQueue` keeps the latest target-encoder embeddings (gathered across DDP
ranks); :func:`choose_partners` scores every query against the queue with the InfoNCE critic's pointwise
MI and picks one entry per query with a selection policy from :mod:`mi_augment.pairs.policies`::

    queue = SupportQueue(capacity=8192, dim=128)
    partners = choose_partners(z_a.detach(), queue, policy="max", temperature=0.2, query_ids=ids)
    loss = nt_xent(partners.embeddings, z_b)     # the partner stands in for view a's embedding (NNCLR)
    queue.push(z_a.detach(), ids=ids)            # ids: dataset indices, so a sample never partners itself

``z_a`` comes from the target (EMA) encoder when the method has one, else the online one.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..core.validation import check_positive_int
from ..pairs.policies import Policy, make_policy

__all__ = ["Partners", "SupportQueue", "choose_partners"]


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_gather_rows(x: Tensor) -> Tensor:
    """Rows of ``x`` from every rank, in rank order (ranks may hold different row counts)."""
    dist = torch.distributed
    world = dist.get_world_size()
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


class SupportQueue(nn.Module):
    """A first-in first-out queue of the latest ``capacity`` embeddings ``(dim,)``, with optional integer ids
    (e.g. dataset indices) so that a sample's own entry can be excluded from its partners.

    Rows live in a ring buffer: :attr:`embeddings` and :attr:`ids` are the filled rows in storage order
    (not age order), and the indices :func:`choose_partners` returns index them. The buffers follow
    ``.to(device)`` and ``state_dict`` (write position and fill count included).

    Args:
        capacity: rows kept; pushing more drops the oldest.
        dim: embedding size.
        device, dtype: of the stored embeddings (float32 by default).
    """

    def __init__(self, capacity: int, dim: int, *, device: Any = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.capacity = check_positive_int(capacity, "capacity")
        self.dim = check_positive_int(dim, "dim")
        self.register_buffer("_store", torch.zeros(self.capacity, self.dim, device=device, dtype=dtype))
        self.register_buffer("_ids", torch.full((self.capacity,), -1, device=device, dtype=torch.int64))
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def embeddings(self) -> Tensor:
        """The filled rows ``(len(self), dim)``."""
        return self._store[: self._size]

    @property
    def ids(self) -> Tensor:
        """Their ids ``(len(self),)`` long; -1 where none was given."""
        return self._ids[: self._size]

    @torch.no_grad()
    def push(self, embeddings: Tensor, ids: Tensor | None = None, *, gather: bool = True) -> None:
        """Append ``embeddings (N, dim)`` (detached), with ``ids (N,)`` if given.

        With ``gather=True`` and ``torch.distributed`` initialised, the rows of every rank are appended (in
        rank order, each rank may push a different N), so each rank's queue holds the same entries; every
        rank must then call ``push`` (a collective), all with ids or all without.
        """
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be a Tensor (N, dim={self.dim}), got "
                             f"{getattr(embeddings, 'shape', type(embeddings).__name__)}")
        if not bool(torch.isfinite(embeddings).all()):
            raise ValueError("embeddings contain NaN or inf")
        if ids is None:
            ids = torch.full((embeddings.shape[0],), -1, dtype=torch.int64, device=embeddings.device)
        else:
            ids = torch.as_tensor(ids, device=embeddings.device)
            if ids.shape != (embeddings.shape[0],) or ids.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"ids must be an integer Tensor ({embeddings.shape[0]},), got {ids.dtype} "
                                 f"{tuple(ids.shape)}")
            ids = ids.long()
        rows = embeddings.detach().to(self._store.dtype)
        if gather and _world_size() > 1:
            rows, ids = _all_gather_rows(rows), _all_gather_rows(ids)
        rows, ids = rows[-self.capacity:].to(self._store.device), ids[-self.capacity:].to(self._store.device)
        n = rows.shape[0]
        slots = (self._next + torch.arange(n, device=self._store.device)) % self.capacity
        self._store[slots] = rows
        self._ids[slots] = ids
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def get_extra_state(self) -> dict[str, int]:
        return {"next": self._next, "size": self._size}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self._next, self._size = int(state["next"]), int(state["size"])

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}, dim={self.dim}, filled={self._size}"


class Partners(NamedTuple):
    """What :func:`choose_partners` returns (a tuple: ``indices, embeddings, pmi = ...``)."""

    #: ``(B,)`` long: rows of the queue's :attr:`SupportQueue.embeddings`
    indices: Tensor
    #: ``(B, dim)``: the chosen rows as stored in the queue
    embeddings: Tensor
    #: ``(B,)`` nats: the chosen partner's pointwise MI with its query
    pmi: Tensor


@torch.no_grad()
def choose_partners(query: Tensor, queue: SupportQueue | Tensor, policy: str | Policy = "max",
                    temperature: float = 0.2, generator: torch.Generator | None = None,
                    query_ids: Tensor | None = None, **policy_options: Any) -> Partners:
    """For each query embedding, one partner from the queue chosen by pointwise MI.

    With unit vectors and the critic ``s(q, m) = cos(q, m) / temperature`` (the loss's temperature), entry
    ``j``'s score for query ``i`` is its pointwise MI against the queue::

        pmi[i, j] = s(q_i, m_j) - log mean_{j' allowed for i} exp s(q_i, m_j')

    and ``policy`` (a name or :class:`~mi_augment.pairs.policies.Policy`, options as keywords) picks one
    allowed entry per query from these scores: ``"max"`` (NNCLR's nearest neighbour), ``"band"`` with
    ``quantiles=(qlo, qhi)`` (a rank range: e.g. ``(0.9, 0.99)`` skips the top 1 %), ``"topk"`` with ``k``
    (uniform among the k best), ``SoftmaxPolicy(t)`` (sampling in pMI units; an instance, since
    ``temperature`` here is the critic's), ``"threshold"``... Entries whose id equals the query's id
    (``query_ids (B,)``, matched against the ids given to :meth:`SupportQueue.push`) are excluded: the
    sample itself never becomes its own partner. Without ids nothing is excluded, so push after choosing.
    The same ``generator`` state gives the same partners.

    Args:
        query: ``(B, dim)`` target-encoder embeddings of the batch.
        queue: a :class:`SupportQueue` or a plain ``(M, dim)`` Tensor (no ids).

    Returns:
        :class:`Partners` ``(indices, embeddings, pmi)``.
    """
    if isinstance(queue, SupportQueue):
        bank, bank_ids = queue.embeddings, queue.ids
    elif isinstance(queue, Tensor):
        bank, bank_ids = queue, None
    else:
        raise TypeError(f"queue must be a SupportQueue or a Tensor (M, dim), got {type(queue).__name__}")
    if bank.ndim != 2 or bank.shape[0] == 0:
        raise ValueError(f"queue is empty ({tuple(bank.shape)}): push target-encoder embeddings before choosing "
                         "partners")
    if not isinstance(query, Tensor) or query.ndim != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(f"query must be a Tensor (B, dim={bank.shape[1]}), got "
                         f"{getattr(query, 'shape', type(query).__name__)}")
    if not bool(torch.isfinite(query).all()):
        raise ValueError("query features contain NaN or inf (the encoder's embeddings of this batch): check the "
                         "loss and learning rate, or the encoder's input")
    if not bool(torch.isfinite(bank).all()):
        rows = int((~torch.isfinite(bank)).any(1).sum())
        raise ValueError(f"the queue's features contain NaN or inf ({rows} of {bank.shape[0]} entries): embeddings "
                         "that diverged were pushed into it")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    chooser = make_policy(policy, **policy_options)
    if chooser.needs_scores and chooser.rank_based and bank.shape[0] < 2:
        raise ValueError(f"policy {chooser.name!r} ranks the queue's entries, but the queue holds "
                         "1 entry: push more embeddings before choosing partners (or use "
                         "policy='random')")

    q = nn.functional.normalize(query.float(), dim=1)
    m = nn.functional.normalize(bank.to(q.device).float(), dim=1)
    critic = q @ m.T / float(temperature)  # (B, M)
    mask = None
    if query_ids is not None:
        query_ids = torch.as_tensor(query_ids, device=critic.device)
        if query_ids.shape != (query.shape[0],) or query_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"query_ids must be an integer Tensor ({query.shape[0]},), got {query_ids.dtype} "
                             f"{tuple(query_ids.shape)}")
        if bank_ids is None:
            raise ValueError("query_ids were given but the queue has no ids: use a SupportQueue pushed with ids")
        mask = bank_ids.to(critic.device)[None, :] != query_ids.long()[:, None]
        empty = ~mask.any(1)
        if bool(empty.any()):
            raise ValueError(f"no queue entry is left for query {int(empty.nonzero()[0])} once its own id is "
                             "excluded: push more entries first")
    if mask is None:
        allowed = critic
        count = torch.full_like(critic[:, :1], critic.shape[1])
    else:
        allowed = critic.masked_fill(~mask, -math.inf)
        count = mask.sum(1, keepdim=True).to(critic.dtype)
    pmi = critic - (torch.logsumexp(allowed, dim=1, keepdim=True) - count.log())
    index = chooser.select(pmi, generator, mask=mask)
    chosen_pmi = pmi.gather(1, index[:, None]).squeeze(1)
    return Partners(index, bank[index.to(bank.device)], chosen_pmi)
