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
                           recommender_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc,
                           similarity_pb2, similarity_pb2_grpc, trainer_pb2, trainer_pb2_grpc)
    except ImportError as e:
        raise ImportError(
            "recsys_client: the gRPC stubs are missing; run "
            "clients/python/generate_stubs.sh (or put Bazel's //clients/python:stubs "
            "output on PYTHONPATH)") from e
    return (health_pb2, health_pb2_grpc, recommender_pb2, recommender_pb2_grpc,
            retrieval_pb2, retrieval_pb2_grpc, similarity_pb2, similarity_pb2_grpc,
            trainer_pb2, trainer_pb2_grpc)


(health_pb2, health_pb2_grpc, recommender_pb2, recommender_pb2_grpc, retrieval_pb2,
 retrieval_pb2_grpc, similarity_pb2, similarity_pb2_grpc, trainer_pb2,
 trainer_pb2_grpc) = _import_stubs()


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


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A trainer job as WatchJob / GetJob report it."""
    id: int
    kind: str          # "train", "build_cache", "refresh"
    state: str         # "QUEUED", "RUNNING", "PUBLISHED", "FAILED", ...
    phase: str
    fraction: float    # of the current phase
    epoch: int
    loss: float
    items_per_second: float
    eta_seconds: float  # negative when unknown
    version: int       # the resulting model version (0: none yet)
    error: str
    epochs: List[Dict[str, float]]  # per finished epoch: loss, validation HR/NDCG@10...

    @property
    def done(self) -> bool:
        return self.state in ("SUCCEEDED", "PUBLISHED", "PUBLISH_FAILED", "FAILED", "CANCELLED")


def _job_status(j) -> JobStatus:
    return JobStatus(
        id=j.id, kind=trainer_pb2.JobKind.Name(j.kind)[4:].lower(),
        state=trainer_pb2.JobState.Name(j.state)[4:], phase=j.progress.phase,
        fraction=j.progress.fraction, epoch=j.progress.epoch, loss=j.progress.loss,
        items_per_second=j.progress.items_per_second, eta_seconds=j.progress.eta_seconds,
        version=j.version, error=j.error,
        epochs=[{"epoch": e.epoch, "loss": e.loss, "validation_hr10": e.validation_hr10,
                 "validation_ndcg10": e.validation_ndcg10, "seconds": e.seconds}
                for e in j.epochs])


@dataclasses.dataclass(frozen=True)
class Example:
    """A translation pair chosen as a few-shot example, with its similarity."""
    key: str
    source: str
    target: str
    score: float


@dataclasses.dataclass(frozen=True)
class Selection:
    """SelectExamples: the examples (most similar first) and the prompt."""
    examples: List[Example]
    prompt: str
    version: int


_METRICS = {"ip": 1, "l2": 2, "cosine": 3}
_POOLINGS = {"cls": similarity_pb2.POOLING_CLS, "mean": similarity_pb2.POOLING_MEAN}


class RecsysClient:
    """Clients of the retrieval sidecar and the recommendation server.

    Args:
      retrieval: host:port of the retrieval sidecar (None: not used).
      recommender: host:port of the recommendation server.
      trainer: host:port of the trainer service.
      similarity: host:port of the similarity endpoint.
      deadline: seconds each call may take.
    """

    def __init__(self, retrieval: Optional[str] = None, recommender: Optional[str] = None,
                 trainer: Optional[str] = None, similarity: Optional[str] = None,
                 deadline: float = 30.0):
        self._deadline = deadline
        self._channels: Dict[str, grpc.Channel] = {}
        opts = [("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)]
        for name, target in (("retrieval", retrieval), ("recommender", recommender),
                             ("trainer", trainer), ("similarity", similarity)):
            if target:
                self._channels[name] = grpc.insecure_channel(target, options=opts)
        self._retrieval = (retrieval_pb2_grpc.RetrievalStub(self._channels["retrieval"])
                           if retrieval else None)
        self._recommender = (recommender_pb2_grpc.RecommenderStub(self._channels["recommender"])
                             if recommender else None)
        self._trainer = (trainer_pb2_grpc.TrainerStub(self._channels["trainer"])
                         if trainer else None)
        self._similarity = (similarity_pb2_grpc.SimilarityStub(self._channels["similarity"])
                            if similarity else None)

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

    # ------------------------------------------------------------ trainer
    def submit_train(self, interactions: str, text_cache: str = "", image_cache: str = "",
                     items_table: str = "", epochs: int = 0, publish: bool = True,
                     device: str = "", resume_from: int = 0, **settings) -> int:
        """Submits a train job; returns its id at once. ``settings`` are other
        TrainJobSpec fields (model, seed, embedding_dim, bottleneck, ...)."""
        stub = self._need(self._trainer, "trainer")
        spec = trainer_pb2.JobSpec(device=device, publish=publish, resume_from=resume_from)
        spec.train.interactions = interactions
        spec.train.text_cache = text_cache
        spec.train.image_cache = image_cache
        spec.train.items_table = items_table
        spec.train.epochs = epochs
        for name, value in settings.items():
            setattr(spec.train, name, value)
        return self._call("submit_train", stub.SubmitJob,
                          trainer_pb2.SubmitJobRequest(spec=spec)).job_id

    def job(self, job_id: int) -> JobStatus:
        """The job's current record."""
        stub = self._need(self._trainer, "trainer")
        return _job_status(self._call("job", stub.GetJob, trainer_pb2.GetJobRequest(job_id=job_id)))

    def cancel(self, job_id: int) -> JobStatus:
        stub = self._need(self._trainer, "trainer")
        return _job_status(self._call("cancel", stub.CancelJob,
                                      trainer_pb2.CancelJobRequest(job_id=job_id)))

    def watch(self, job_id: int) -> Iterator[JobStatus]:
        """Yields the job's state, first as it is now, then at each change,
        until the job ends (no deadline: a job runs as long as it runs)."""
        stub = self._need(self._trainer, "trainer")
        try:
            for j in stub.WatchJob(trainer_pb2.WatchJobRequest(job_id=job_id)):
                yield _job_status(j)
        except grpc.RpcError as e:
            raise RecsysError(e.code().name, e.details() or "", "watch") from None

    # --------------------------------------------------------- similarity
    def create_example_collection(self, name: str, encoder: str = "hashed_text",
                                  model: str = "", pooling: str = "cls", vocab: str = "",
                                  dimension: int = 0, max_length: int = 0,
                                  index_factory: str = "") -> str:
        """A translation-example collection; returns its encoder fingerprint.

        encoder: "hashed_text" (weight-free, the default), "bert" (`model` is
        a model directory: config.json, vocab.txt, model.safetensors) or
        "torchscript" (`model` is the module file, `vocab` its WordPiece
        vocabulary, `dimension` its output width). pooling: "cls" or "mean"
        (bert and torchscript). max_length: tokens incl. [CLS]/[SEP], 0 for
        the server's default. The server checks the encoder at creation (a
        wrong width or a missing file raises RecsysError naming the field).
        """
        if encoder not in ("hashed_text", "bert", "torchscript"):
            raise ValueError(f"encoder: expected hashed_text, bert or torchscript, got {encoder!r}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling: expected cls or mean, got {pooling!r}")
        stub = self._need(self._similarity, "similarity")
        req = similarity_pb2.CreateSimilarityCollectionRequest()
        req.config.name = name
        req.config.kind = similarity_pb2.SIMILARITY_TRANSLATION_EXAMPLES
        req.config.index_factory = index_factory
        if encoder == "hashed_text":
            req.config.encoder.hashed_text.SetInParent()
        elif encoder == "bert":
            req.config.encoder.bert.model_dir = model
            req.config.encoder.bert.pooling = _POOLINGS[pooling]
            req.config.encoder.bert.max_length = max_length
        else:
            ts = req.config.encoder.torchscript
            ts.path = model
            ts.pooling = _POOLINGS[pooling]
            ts.vocab_path = vocab
            ts.dimension = dimension
            ts.max_length = max_length
        reply = self._call("create_example_collection", stub.CreateCollection, req)
        return reply.info.encoder_fingerprint

    def index_examples(self, collection: str,
                       examples: Iterable[Tuple[str, str, str, str]], batch_size: int = 500) -> int:
        """Stages (key, source, target, pair) examples; returns how many."""
        stub = self._need(self._similarity, "similarity")
        sent = [0]

        def batches() -> Iterator:
            req = similarity_pb2.IndexExamplesRequest(collection=collection)
            for key, source, target, pair in examples:
                req.examples.add(key=key, source=source, target=target, pair=pair)
                if len(req.examples) >= batch_size:
                    sent[0] += len(req.examples)
                    yield req
                    req = similarity_pb2.IndexExamplesRequest(collection=collection)
            if len(req.examples):
                sent[0] += len(req.examples)
                yield req

        reply = self._call("index_examples", stub.IndexExamples, batches())
        if reply.staged != sent[0]:
            raise RecsysError("DATA_LOSS", f"staged {reply.staged} of {sent[0]}", "index_examples")
        return reply.staged

    def publish_similarity(self, collection: str) -> int:
        """Fits the encoder, embeds the staged entries; returns the live version."""
        stub = self._need(self._similarity, "similarity")
        r = self._call("publish_similarity", stub.Publish,
                       similarity_pb2.PublishSimilarityRequest(collection=collection))
        return r.info.live_version

    def select_examples(self, collection: str, source: str, pair: str, k: int = 4,
                        source_language: str = "", target_language: str = "",
                        min_similarity: Optional[float] = None,
                        diversity_threshold: Optional[float] = None) -> Selection:
        """The k examples whose source is most similar to `source`, and the
        ready few-shot prompt (the most similar example nearest the query)."""
        stub = self._need(self._similarity, "similarity")
        req = similarity_pb2.SelectExamplesRequest(collection=collection, source=source,
                                                   pair=pair, k=k)
        if min_similarity is not None:
            req.min_similarity = min_similarity
        if diversity_threshold is not None:
            req.diversity_threshold = diversity_threshold
        req.prompt_template.source_language = source_language
        req.prompt_template.target_language = target_language
        r = self._call("select_examples", stub.SelectExamples, req)
        return Selection(
            examples=[Example(e.example.key, e.example.source, e.example.target, e.score)
                      for e in r.examples],
            prompt=r.prompt, version=r.version)
