#!/usr/bin/env python3
"""Trains a model through the Trainer service and watches it to the end.

    examples/train.py --trainer=127.0.0.1:50053 --interactions=users.tsv \\
        --text_cache=text.safetensors [--image_cache=...] [--items=items.tsv]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from recsys_client import RecsysClient, RecsysError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trainer", default="127.0.0.1:50053")
    p.add_argument("--interactions", required=True)
    p.add_argument("--text_cache", default="")
    p.add_argument("--image_cache", default="")
    p.add_argument("--items", default="")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--embedding_dim", type=int, default=0)
    args = p.parse_args()
    with RecsysClient(trainer=args.trainer) as client:
        try:
            job = client.submit_train(args.interactions, text_cache=args.text_cache,
                                      image_cache=args.image_cache, items_table=args.items,
                                      epochs=args.epochs, embedding_dim=args.embedding_dim)
            print(f"job {job} submitted")
            last = None
            for status in client.watch(job):
                if status.state == "RUNNING":
                    print(f"  {status.phase} {100 * status.fraction:3.0f}% loss {status.loss:.4f}")
                last = status
        except RecsysError as e:
            print(f"training failed: {e}", file=sys.stderr)
            return 1
    for e in last.epochs:
        print(f"epoch {e['epoch']}: loss {e['loss']:.4f} valid HR@10 {e['validation_hr10']:.4f}")
    print(f"job {last.id}: {last.state}, model version {last.version} {last.error}")
    return 0 if last.state in ("PUBLISHED", "SUCCEEDED") else 1


if __name__ == "__main__":
    sys.exit(main())
