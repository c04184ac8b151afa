#!/usr/bin/env python3
"""A collection in the retrieval sidecar: create, upsert, publish, search.

    examples/search.py --retrieval=127.0.0.1:50051 --collection=demo
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from recsys_client import RecsysClient, RecsysError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--retrieval", default="127.0.0.1:50051")
    p.add_argument("--collection", default="demo")
    args = p.parse_args()
    # Points on a circle; the neighbours of angle a are the angles next to it.
    entries = [(f"p{i:03d}", [math.cos(i / 10), math.sin(i / 10)], {"angle": str(i)})
               for i in range(60)]
    with RecsysClient(retrieval=args.retrieval) as client:
        try:
            client.create_collection(args.collection, dimension=2, metric="cosine")
        except RecsysError as e:
            if e.code != "ALREADY_EXISTS":
                raise
        n = client.upsert(args.collection, entries, batch_size=16)
        v = client.publish(args.collection)
        print(f"upserted {n}; version {v.version} is {v.state} with {v.entries} entries")
        for hit in client.search(args.collection, key="p030", k=3):
            print(f"{hit.key}  {hit.score:.4f}  angle={hit.payload['angle']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
