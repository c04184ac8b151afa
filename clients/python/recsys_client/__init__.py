"""A small typed Python client of the recsys services.

    from recsys_client import RecsysClient
    client = RecsysClient(retrieval="127.0.0.1:50051", recommender="127.0.0.1:50052")
    for item in client.recommend(["B001", "B002"], k=10).items:
        print(item.key, item.score, item.title)

Needs Debian's python3-grpcio and python3-protobuf and the stubs generated
from proto/ (clients/python/generate_stubs.sh, or Bazel's
//clients/python:stubs); see clients/python/README.md.
"""

from recsys_client.client import (  # noqa: F401
    Example,
    Hit,
    Item,
    JobStatus,
    Recommendation,
    RecsysClient,
    RecsysError,
    Selection,
    VersionInfo,
)
