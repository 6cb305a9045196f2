"""Concurrent queries share forward passes (executors/encoders/coalesce.py), and each still
gets its own answer: unit-tested on the Coalescer, then through the real flow."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from executors.encoders.coalesce import Coalescer


class SlowWork:
    """Marks every item done; the first run waits until released, so others queue up."""

    def __init__(self, fail_on: str = ""):
        self.runs: list[list[str]] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[dict]) -> None:
        if not self.runs:
            self.release.wait(5)
        self.runs.append([i["name"] for i in items])
        if any(i["name"] == self.fail_on for i in items):
            raise RuntimeError(f"cannot embed {self.fail_on}")
        for i in items:
            i["done"] = True


def _submit_all(coalescer: Coalescer, work: SlowWork, queries: list[list[dict]]) -> list:
    async def main() -> list:
        first = asyncio.create_task(coalescer.submit(queries[0]))
        await asyncio.sleep(0.05)  # the first run is now busy
        rest = [asyncio.create_task(coalescer.submit(q)) for q in queries[1:]]
        await asyncio.sleep(0.05)  # ...and the others wait
        work.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    return asyncio.run(main())


def test_queries_waiting_while_the_model_runs_share_the_next_run():
    work = SlowWork()
    coalescer = Coalescer(work, max_items=16)
    queries = [[{"name": f"q{i}"}] for i in range(8)]
    results = _submit_all(coalescer, work, queries)
    assert results == [None] * 8
    assert work.runs == [["q0"], [f"q{i}" for i in range(1, 8)]]
    assert all(q[0]["done"] for q in queries)
    assert (coalescer.runs, coalescer.items) == (2, 8)


def test_a_run_takes_at_most_max_items_and_keeps_queries_whole():
    work = SlowWork()
    coalescer = Coalescer(work, max_items=4)
    queries = [[{"name": "a"}], [{"name": "b1"}, {"name": "b2"}, {"name": "b3"}], [{"name": "c1"}, {"name": "c2"}], [{"name": "d"}]]
    _submit_all(coalescer, work, queries)
    assert work.runs == [["a"], ["b1", "b2", "b3"], ["c1", "c2", "d"]]


def test_an_error_reaches_every_query_of_its_run_and_no_other():
    work = SlowWork(fail_on="bad")
    coalescer = Coalescer(work, max_items=2)
    queries = [[{"name": "first"}], [{"name": "ok"}], [{"name": "bad"}], [{"name": "later"}]]
    results = _submit_all(coalescer, work, queries)
    assert work.runs == [["first"], ["ok", "bad"], ["later"]]
    assert results[0] is None and results[3] is None
    assert [str(r) for r in results[1:3]] == ["cannot embed bad"] * 2
    assert queries[3][0]["done"]  # the coalescer keeps serving after a failed run


@pytest.mark.flow
def test_concurrent_searches_through_the_flow_each_get_their_own_answer(tiny_models, photo_dir, tmp_path):
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index
    from imgsearch.searching import run_search

    images = sorted(photo_dir.rglob("*.jpg"))
    texts = ["a cup of coffee", "a rocket", "an astronaut", "a cat"]
    with local_flow("clip", model=str(tiny_models["clip"]), store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        collection = run_index(gw, photo_dir, info, batch_size=4, progress=False).collection
        alone = {t: run_search(gw, collection, info, text=t, top_k=3).matches for t in texts}

        def encoder_docs() -> int:
            timings = next(v for k, v in gw.call_each("/timings").items() if k.startswith("encoder"))
            return sum(h["docs"] for name, h in timings["handlers"].items() if name.startswith("encode_"))

        before = encoder_docs()
        queries = [("image", p) for p in images] * 2 + [("text", t) for t in texts] * 2

        def ask(query: tuple) -> list:
            kind, value = query
            own = Gateway(host)  # one client each, as separate users would be
            if kind == "image":
                return run_search(own, collection, info, image=value, top_k=3).matches
            return run_search(own, collection, info, text=value, top_k=3).matches

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, queries))
        embedded = encoder_docs() - before

    assert embedded == len(queries)  # every query embedded exactly once, batched or not
    for (kind, value), matches in zip(queries, answers):
        if kind == "image":
            assert matches[0]["path"] == str(value) and matches[0]["score"] > 0.999
        else:
            assert [m["hash"] for m in matches] == [m["hash"] for m in alone[value]]


@pytest.mark.flow
@pytest.mark.slow
def test_concurrent_clients_share_forward_passes_through_the_flow(photo_dir, tmp_path):
    """Separate client processes querying at once: the encoder runs fewer passes than queries."""
    from imgsearch.bench.pipeline import concurrent_search
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index

    images = sorted(photo_dir.rglob("*.jpg"))
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        collection = run_index(gw, photo_dir, info, batch_size=8, progress=False).collection
        result = concurrent_search(host, collection, info, images, clients=6, per_client=4)
    assert result["errors"] == 0, result["error_examples"]
    assert result["queries"] == 24
    # Every query is embedded once; shared passes put more than one query in a pass on average.
    assert result["mean_encoder_batch"] > 1, result
