"""freshrec.ranking: the ranking service swaps in the champion with its catalogue embedded once, and ranks as
serving.rank_items does."""

import numpy as np
import pytest

from bench.api_load import wait_until
from freshrec import generate
from freshrec.ranking import NoChampionYet, RankingService
from freshrec.serving import load_scorer, rank_items

from helpers import publish





def test_the_service_swaps_in_each_champion_with_its_catalogue_and_ranks_as_rank_items(engine, artifact):
    generate.insert_stream(engine, generate.StreamSpec(users=5, items=12, events=60, seed=4))
    swaps = []
    service = RankingService(engine, recheck_s=60, on_swap=lambda old, new: swaps.append((old, new)))
    with pytest.raises(NoChampionYet, match="No champion is loaded yet"):
        service.rank(1)
    service.start()
    try:
        v1 = publish(engine, artifact, None).version
        wait_until(lambda: service.scorer is not None, timeout=60, what="the first champion")
        assert swaps == [(None, v1)] and service.catalogue_size == 12  # embedded at the swap, before any request
        version, ranked = service.rank(1, top=12)
        expected = rank_items(engine, load_scorer(engine), 1, None, top=12)  # no catalogue: embeds every item
        assert version == v1 and [r["item_id"] for r in ranked] == [r["item_id"] for r in expected]
        np.testing.assert_allclose([r["score"] for r in ranked], [r["score"] for r in expected], rtol=1e-5)
        _, picked = service.rank(1, item_ids=[3, 5], top=10)
        assert sorted(r["item_id"] for r in picked) == [3, 5]
        v2 = publish(engine, artifact, v1).version
        wait_until(lambda: service.scorer.version == v2, timeout=60, what="the swap")
        assert swaps == [(None, v1), (v1, v2)] and service.rank(1)[0] == v2 and service.swaps == 2
    finally:
        service.stop()
