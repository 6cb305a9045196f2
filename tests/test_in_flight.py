"""`index` keeps requests in flight for every encoder replica the gateway reports (EncoderInfo.replicas)."""

from executors.contracts import EncoderInfo
from imgsearch.flow import PREFETCH
from imgsearch.indexing import MAX_IN_FLIGHT, index_prefetch


def _info(**kw) -> EncoderInfo:
    return EncoderInfo(encoder="clip", model="m", dim=8, **kw)


def test_replicas_travel_in_info_and_default_to_one():
    assert EncoderInfo.from_dict(_info(replicas=4).to_dict()).replicas == 4
    older = {k: v for k, v in _info().to_dict().items() if k != "replicas"}  # an /info from before the field
    assert EncoderInfo.from_dict(older).replicas == 1


def test_in_flight_grows_with_replicas_and_lanes_within_its_cap():
    assert index_prefetch(_info()) == PREFETCH == 4  # one replica of one lane: the flow's default
    assert index_prefetch(_info(lanes=6)) == 8  # one replica: its lanes, one queued, one for the stages around
    by_replicas = [index_prefetch(_info(replicas=r)) for r in (1, 2, 4, 8)]
    assert by_replicas == [4, 5, 9, 17]  # two per replica of one lane (one encoding, one queued), plus one
    assert index_prefetch(_info(replicas=4, lanes=2)) == 13
    assert index_prefetch(_info(replicas=1000, lanes=8)) == MAX_IN_FLIGHT
    assert index_prefetch(_info(replicas=0)) == index_prefetch(_info())  # nonsense from a gateway: one
