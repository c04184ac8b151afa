"""RecsysClient: one object for every recsys service, typed results.

Every call has a deadline (``deadline`` seconds, per call); a failed call
raises RecsysError carrying the server's status code name and message.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import grpc


def _import_stubs():
    """Imports the generated stubs, from PYTHONPATH or clients/python/gen."""
    try:
        from proto import recommender_pb2  # noqa: F401
    except ImportError:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, os.path.join(here, "gen"))
    try:
        from proto import (health_pb2, health_pb2_grpc, recommender_pb2,
                           recommender_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc)
    except ImportError as e:
        raise ImportError(
            "recsys_client: the gRPC stubs are missing; run "
            "clients/python/generate_stubs.sh (or put Bazel's //clients/python:stubs "
            "output on PYTHONPATH)") from e
    return (health_pb2, health_pb2_grpc, recommender_pb2, recommender_pb2_grpc,
            retrieval_pb2, retrieval_pb2_grpc)


(health_pb2, health_pb2_grpc, recommender_pb2, recommender_pb2_grpc, retrieval_pb2,
 retrieval_pb2_grpc) = _import_stubs()


class RecsysError(Exception):
    """A failed call: ``code`` is the gRPC status name (e.g. "NOT_FOUND")."""

    def __init__(self, code: str, message: str, call: str):
        super().__init__(f"{call}: {code}: {message}")
        self.code = code
        self.message = message
        self.call = call


@dataclasses.dataclass(frozen=True)
class Item:
    """One recommended item."""
    key: str
    score: float
    payload: Dict[str, str]

    @property
    def title(self) -> str:
        return self.payload.get("title", "")


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A Recommend reply: the version that answered and its items."""
    version: int
    items: List[Item]
    unknown_history_items: int


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result of the retrieval sidecar."""
    key: str
    score: float
    payload: Dict[str, str]


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """A collection version: number, state ("LIVE", "READY", ...), entries."""
    version: int
    state: str
    entries: int
    error: str


_METRICS = {"ip": 1, "l2": 2, "cosine": 3}


class RecsysClient:
    """Clients of the retrieval sidecar and the recommendation server.

    Args:
      retrieval: host:port of the retrieval sidecar (None: not used).
      recommender: host:port of the recommendation server.
      deadline: seconds each call may take.
    """

    def __init__(self, retrieval: Optional[str] = None, recommender: Optional[str] = None,
                 deadline: float = 30.0):
        self._deadline = deadline
        self._channels: Dict[str, grpc.Channel] = {}
        opts = [("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)]
        for name, target in (("retrieval", retrieval), ("recommender", recommender)):
            if target:
                self._channels[name] = grpc.insecure_channel(target, options=opts)
        self._retrieval = (retrieval_pb2_grpc.RetrievalStub(self._channels["retrieval"])
                           if retrieval else None)
        self._recommender = (recommender_pb2_grpc.RecommenderStub(self._channels["recommender"])
                             if recommender else None)

    def close(self) -> None:
        for c in self._channels.values():
            c.close()

    def __enter__(self) -> "RecsysClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ helpers
    def _call(self, name: str, fn, request):
        try:
            return fn(request, timeout=self._deadline)
        except grpc.RpcError as e:  # a grpc.Call as well
            raise RecsysError(e.code().name, e.details() or "", name) from None

    def _need(self, stub, service: str):
        if stub is None:
            raise ValueError(f"RecsysClient was created without a {service} address")
        return stub

    def health(self, service: str = "retrieval") -> str:
        """The grpc.health.v1 status of a service ("SERVING", "NOT_SERVING")."""
        stub = health_pb2_grpc.HealthStub(self._channels[service])
        reply = self._call("health", stub.Check, health_pb2.HealthCheckRequest(service=""))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    # -------------------------------------------------------- recommender
    def recommend(self, history: Sequence[str], k: int = 10, version: int = 0,
                  include_history: bool = False,
                  payload_filter: Optional[Dict[str, str]] = None) -> Recommendation:
        """The next k items for a history of item keys (oldest first)."""
        stub = self._need(self._recommender, "recommender")
        req = recommender_pb2.RecommendRequest(history=list(history), k=k,
                                               include_history=include_history)
        req.model.version = version
        for f, v in (payload_filter or {}).items():
            req.payload_filter[f] = v
        r = self._call("recommend", stub.Recommend, req)
        return Recommendation(
            version=r.model.version,
            items=[Item(i.key, i.score, dict(i.payload)) for i in r.items],
            unknown_history_items=r.unknown_history_items)

    # ---------------------------------------------------------- retrieval
    def create_collection(self, name: str, dimension: int, metric: str = "ip",
                          index_factory: str = "Flat") -> None:
        """Creates a collection (ALREADY_EXISTS raises RecsysError)."""
        stub = self._need(self._retrieval, "retrieval")
        req = retrieval_pb2.CreateCollectionRequest()
        req.config.name = name
        req.config.dimension = dimension
        req.config.metric = _METRICS[metric]
        req.config.index_factory = index_factory
        self._call("create_collection", stub.CreateCollection, req)

    def upsert(self, collection: str,
               entries: Iterable[Tuple[str, Sequence[float], Dict[str, str]]],
               batch_size: int = 1000) -> int:
        """Streams (key, vector, payload) entries; returns how many were
        acknowledged, and raises RecsysError unless that is all of them."""
        stub = self._need(self._retrieval, "retrieval")
        sent = [0]

        def batches() -> Iterator:
            req = retrieval_pb2.UpsertRequest(collection=collection)
            for key, vector, payload in entries:
                e = req.entries.add(key=key)
                e.vector.values.extend(vector)
                for f, v in (payload or {}).items():
                    e.payload[f] = v
                if len(req.entries) >= batch_size:
                    sent[0] += len(req.entries)
                    yield req
                    req = retrieval_pb2.UpsertRequest(collection=collection)
            if len(req.entries):
                sent[0] += len(req.entries)
                yield req

        reply = self._call("upsert", stub.Upsert, batches())
        if reply.upserted != sent[0]:
            raise RecsysError("DATA_LOSS", f"acknowledged {reply.upserted} of {sent[0]} entries",
                              "upsert")
        return reply.upserted

    def publish(self, collection: str, version: int = 0) -> VersionInfo:
        """Publishes the staging set and waits until the version is live."""
        stub = self._need(self._retrieval, "retrieval")
        r = self._call("publish", stub.Publish,
                       retrieval_pb2.PublishRequest(collection=collection, version=version,
                                                    wait=True))
        v = r.version
        return VersionInfo(v.version, retrieval_pb2.VersionState.Name(v.state)[8:],
                           v.entry_count, v.error)

    def search(self, collection: str, vector: Optional[Sequence[float]] = None,
               key: Optional[str] = None, k: int = 10, version: int = 0,
               payload_filter: Optional[Dict[str, str]] = None,
               exclude: Sequence[str] = ()) -> List[Hit]:
        """Top k of a collection by a query vector, or by a stored key."""
        stub = self._need(self._retrieval, "retrieval")
        req = retrieval_pb2.SearchRequest(collection=collection, k=k, version=version,
                                          include_payload=True, exclude_keys=list(exclude))
        q = req.queries.add()
        if key is not None:
            q.key = key
        else:
            q.vector.values.extend(vector or [])
        for f, v in (payload_filter or {}).items():
            req.payload_filter[f] = v
        r = self._call("search", stub.Search, req)
        return [Hit(h.key, h.score, dict(h.payload)) for h in r.results[0].hits]
