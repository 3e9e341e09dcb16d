"""Cross-image MI positives: the support queue and partner choice by pointwise MI."""

import math
import socket

import pytest
import torch

from mi_augment.pairs import BandPolicy, SoftmaxPolicy
from mi_augment.ssl.positives import Partners, SupportQueue, choose_partners


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _clusters(n_clusters, per_cluster, dim, spread, seed):
    """Points around random unit centres: (n_clusters * per_cluster, dim) points and their cluster labels."""
    g = _gen(seed)
    centres = torch.nn.functional.normalize(torch.randn(n_clusters, dim, generator=g), dim=1)
    labels = torch.arange(n_clusters).repeat_interleave(per_cluster)
    points = centres[labels] + spread * torch.randn(len(labels), dim, generator=g) / math.sqrt(dim)
    return points, labels


@pytest.mark.parametrize("policy, options", [("max", {}), ("topk", {"k": 5}), (SoftmaxPolicy(1.0), {})])
def test_partner_is_in_the_anchors_cluster_when_clusters_are_separated(policy, options):
    points, labels = _clusters(8, 64, 32, 0.3, seed=0)
    queue = SupportQueue(capacity=1024, dim=32)
    ids = torch.arange(len(points))
    queue.push(points, ids=ids)
    query = torch.arange(0, len(points), 4)
    partners = choose_partners(points[query], queue, policy=policy, temperature=0.1, generator=_gen(1),
                               query_ids=ids[query], **options)
    partner_ids = queue.ids[partners.indices]
    assert not bool((partner_ids == ids[query]).any())  # never the sample itself
    same_cluster = (labels[partner_ids] == labels[query]).float().mean()
    assert float(same_cluster) >= 0.9


def test_the_sample_itself_is_excluded_by_id():
    points = torch.randn(10, 4, generator=_gen(2))
    queue = SupportQueue(16, 4)
    queue.push(points, ids=torch.arange(10))
    chosen = choose_partners(points, queue, policy="max", query_ids=torch.arange(10))
    assert not bool((queue.ids[chosen.indices] == torch.arange(10)).any())
    without_ids = choose_partners(points, queue, policy="max")
    assert torch.equal(queue.ids[without_ids.indices], torch.arange(10))  # its own copy is the nearest


def test_band_returns_partners_from_the_requested_rank_range():
    queue = SupportQueue(256, 16)
    queue.push(torch.randn(201, 16, generator=_gen(3)), ids=torch.arange(201))
    query_ids = torch.arange(0, 201, 10)
    query = queue.embeddings[query_ids]
    qlo, qhi = 0.8, 0.9
    chosen = choose_partners(query, queue, policy="band", quantiles=(qlo, qhi), temperature=0.2,
                             generator=_gen(4), query_ids=query_ids)
    n_allowed = 200  # the query's own entry is excluded
    for row, index in enumerate(chosen.indices):
        allowed = queue.ids != query_ids[row]
        scores = torch.nn.functional.cosine_similarity(query[row][None], queue.embeddings, dim=1)
        rank = int((scores[allowed] < scores[index]).sum())  # 0 = lowest
        assert math.floor(qlo * (n_allowed - 1)) <= rank <= math.ceil(qhi * (n_allowed - 1))
    assert chosen.embeddings.shape == (len(query_ids), 16)
    assert torch.equal(chosen.embeddings, queue.embeddings[chosen.indices])


def test_partner_pmi_is_the_pointwise_mi_against_the_queue():
    bank = torch.randn(30, 8, generator=_gen(5))
    query = torch.randn(4, 8, generator=_gen(6))
    chosen = choose_partners(query, bank, policy="min", temperature=0.5)
    critic = torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T / 0.5
    pmi = critic - (critic.logsumexp(1, keepdim=True) - math.log(30))
    assert torch.equal(chosen.indices, pmi.argmin(1))
    assert torch.allclose(chosen.pmi, pmi.min(1).values, atol=1e-5)
    assert bool((pmi.max(1).values <= math.log(30) + 1e-5).all())


def test_replay_with_the_same_generator_gives_the_same_partners():
    points, _ = _clusters(4, 50, 16, 0.5, seed=7)
    queue = SupportQueue(256, 16)
    queue.push(points, ids=torch.arange(200))
    for policy, options in ((SoftmaxPolicy(0.5), {}), ("topk", {"k": 10}), ("band", {})):
        first = choose_partners(points[:20], queue, policy, generator=_gen(8), query_ids=torch.arange(20), **options)
        again = choose_partners(points[:20], queue, policy, generator=_gen(8), query_ids=torch.arange(20), **options)
        assert isinstance(first, Partners)
        assert torch.equal(first.indices, again.indices) and torch.equal(first.pmi, again.pmi)


def test_queue_is_first_in_first_out_with_fixed_capacity():
    queue = SupportQueue(5, 2)
    assert len(queue) == 0
    queue.push(torch.zeros(3, 2), ids=torch.tensor([0, 1, 2]))
    assert len(queue) == 3 and queue.embeddings.shape == (3, 2)
    queue.push(torch.ones(4, 2), ids=torch.tensor([3, 4, 5, 6]))
    assert len(queue) == 5
    assert sorted(queue.ids.tolist()) == [2, 3, 4, 5, 6]  # 0 and 1, the oldest, left
    queue.push(torch.full((7, 2), 2.0))  # more than capacity: only the newest five stay
    assert queue.ids.tolist() == [-1] * 5 and bool((queue.embeddings == 2).all())


def test_queue_state_dict_round_trip():
    queue = SupportQueue(6, 3)
    queue.push(torch.randn(4, 3, generator=_gen(9)), ids=torch.arange(4))
    copy = SupportQueue(6, 3)
    copy.load_state_dict(queue.state_dict())
    assert len(copy) == 4 and torch.equal(copy.embeddings, queue.embeddings) and torch.equal(copy.ids, queue.ids)
    copy.push(torch.zeros(3, 3))
    queue.push(torch.zeros(3, 3))
    assert torch.equal(copy.ids, queue.ids)


@pytest.mark.parametrize("bad", ["query", "queue"])
def test_non_finite_features_are_blamed_on_the_features_not_the_scorer(bad):
    query, bank = torch.randn(2, 4), torch.randn(5, 4)
    (query if bad == "query" else bank)[0, 1] = math.nan
    with pytest.raises(ValueError, match="features contain NaN") as info:
        choose_partners(query, bank, policy="max")
    assert "scorer" not in str(info.value) and (bad in str(info.value))


def test_bad_input_is_named():
    queue = SupportQueue(8, 4)
    with pytest.raises(ValueError, match="queue is empty"):
        choose_partners(torch.randn(2, 4), queue)
    queue.push(torch.randn(1, 4), ids=torch.tensor([0]))
    with pytest.raises(ValueError, match="queue holds 1 entry") as one_entry:
        choose_partners(torch.randn(2, 4), queue, policy="max")
    assert "candidates" not in str(one_entry.value)
    with pytest.raises(ValueError, match="no queue entry is left"):
        choose_partners(torch.randn(1, 4), queue, policy="random", query_ids=torch.tensor([0]))
    with pytest.raises(ValueError, match="embeddings must be"):
        queue.push(torch.randn(2, 5))
    with pytest.raises(ValueError, match="NaN or inf"):
        queue.push(torch.full((2, 4), math.nan))
    with pytest.raises(ValueError, match="ids must be"):
        queue.push(torch.randn(2, 4), ids=torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="query must be"):
        choose_partners(torch.randn(2, 3), queue, policy="random")
    with pytest.raises(ValueError, match="queue has no ids"):
        choose_partners(torch.randn(2, 4), torch.randn(5, 4), query_ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        choose_partners(torch.randn(2, 4), torch.randn(5, 4), temperature=-1.0)
    with pytest.raises(ValueError, match="capacity"):
        SupportQueue(0, 4)
    with pytest.raises(ValueError, match="policy"):
        choose_partners(torch.randn(2, 4), torch.randn(5, 4), policy=BandPolicy(), quantiles=(0.1, 0.2))


# ---------------------------------------------------------------------------------------------------------
# DDP: two gloo processes
# ---------------------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        queue = SupportQueue(16, 3)
        rows = 3 if rank == 0 else 2  # ranks may push different counts
        queue.push(torch.full((rows, 3), float(rank)), ids=torch.arange(rows) + 100 * rank)
        torch.save({"ids": queue.ids.clone(), "embeddings": queue.embeddings.clone()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_queue_under_two_gloo_processes_holds_both_ranks_entries(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        state = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert state["ids"].tolist() == [0, 1, 2, 100, 101]
        assert state["embeddings"][:, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
