#!/usr/bin/env python3
"""Few-shot examples for a sentence to translate, from the similarity endpoint.

    examples/select_examples.py --similarity=127.0.0.1:50054 --collection=bible \\
        --pair=en-es "And Ruth said, Intreat me not to leave thee"
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from recsys_client import RecsysClient, RecsysError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--similarity", default="127.0.0.1:50054")
    p.add_argument("--collection", required=True)
    p.add_argument("--pair", default="en-es")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("sentence")
    args = p.parse_args()
    with RecsysClient(similarity=args.similarity) as client:
        try:
            s = client.select_examples(args.collection, args.sentence, args.pair, k=args.k,
                                       source_language="English", target_language="Spanish")
        except RecsysError as e:
            print(f"select_examples failed: {e}", file=sys.stderr)
            return 1
    for e in s.examples:
        print(f"{e.score:.4f}  {e.key}: {e.source[:60]}")
    print("--- prompt ---")
    print(s.prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
