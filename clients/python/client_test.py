#!/usr/bin/env python3
"""Checks RecsysClient against running services (tests/python_client_test.sh).

    client_test.py RETRIEVAL_ADDR RECOMMENDER_ADDR HISTORY_KEY,...
"""
import sys

from recsys_client import RecsysClient, RecsysError


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except RecsysError as e:
        assert e.code == code, (e.code, e.message)
        return e
    raise AssertionError(f"expected {code}")


def main():
    retrieval, recommender, history = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    with RecsysClient(retrieval=retrieval, recommender=recommender, deadline=20) as c:
        assert c.health("retrieval") == "SERVING"
        assert c.health("recommender") == "SERVING"
        # The recommender: the live version, k items, history excluded, titles.
        r = c.recommend(history, k=5)
        assert r.version >= 1 and len(r.items) == 5, r
        assert not set(history) & {i.key for i in r.items}, r
        assert all(i.title for i in r.items), r
        scores = [i.score for i in r.items]
        assert scores == sorted(scores, reverse=True), scores
        pinned = c.recommend(history, k=5, version=r.version)
        assert [i.key for i in pinned.items] == [i.key for i in r.items]
        e = expect_error("INVALID_ARGUMENT", c.recommend, history, k=0)
        assert "k: must be in" in e.message, e.message
        expect_error("NOT_FOUND", c.recommend, history, k=5, version=999)

        # The sidecar: a collection end to end.
        c.create_collection("pyclient", dimension=3, metric="cosine")
        expect_error("ALREADY_EXISTS", c.create_collection, "pyclient", dimension=3)
        n = c.upsert("pyclient", [("a", [1, 0, 0], {"t": "A"}), ("b", [0, 1, 0], {"t": "B"}),
                                  ("c", [0.8, 0.2, 0], {})], batch_size=2)
        assert n == 3, n
        v = c.publish("pyclient", version=4)
        assert (v.version, v.state, v.entries) == (4, "LIVE", 3), v
        hits = c.search("pyclient", vector=[1, 0, 0], k=2)
        assert [h.key for h in hits] == ["a", "c"], hits
        assert abs(hits[0].score - 1.0) < 1e-6 and hits[0].payload == {"t": "A"}, hits
        assert [h.key for h in c.search("pyclient", key="a", k=1)] == ["c"]
        expect_error("INVALID_ARGUMENT", c.search, "pyclient", vector=[1, 0], k=2)
        expect_error("NOT_FOUND", c.search, "no-such-collection", vector=[1, 0, 0])
    print("python client: ok")


if __name__ == "__main__":
    main()
