#!/usr/bin/env python3
"""Next-item recommendations for a user's history, with titles.

    examples/recommend.py --recommender=127.0.0.1:50052 B001 B002 B003
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from recsys_client import RecsysClient, RecsysError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recommender", default="127.0.0.1:50052")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("history", nargs="*", help="item keys, oldest first")
    args = p.parse_args()
    with RecsysClient(recommender=args.recommender) as client:
        try:
            r = client.recommend(args.history, k=args.k)
        except RecsysError as e:
            print(f"recommend failed: {e}", file=sys.stderr)
            return 1
    print(f"model version {r.version} ({r.unknown_history_items} unknown history items)")
    for rank, item in enumerate(r.items, 1):
        print(f"{rank:3d}  {item.score:8.4f}  {item.key}  {item.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
