"""The composition root: every part of threadline built once from the settings
and wired together. Nothing else constructs the services, the engine's parts or
the backends; the app, the CLI and tests ask here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.engine.events import EventBus, InMemoryEventBus
from threadline.engine.lifecycle import Lifecycle
from threadline.engine.tools import Toolbox
from threadline.engine.tools.code_interpreter import CodeInterpreter
from threadline.engine.tools.file_search import FileSearch
from threadline.engine.worker import RunWorker
from threadline.models.base import ModelBackend
from threadline.models.registry import build_backend
from threadline.models.tokens import get_encoding
from threadline.observability.metrics import Metrics
from threadline.queue.base import RunQueue
from threadline.queue.inprocess import InProcessQueue
from threadline.retrieval.chunking import OrdinaryTokenizer
from threadline.retrieval.embedders import make_embedder
from threadline.retrieval.embedders.local import MINILM, LocalEmbedder
from threadline.retrieval.index import open_index
from threadline.retrieval.pipeline import Pipeline, RetrievalPipeline
from threadline.services.assistants import AssistantService
from threadline.services.catalog import Services
from threadline.services.expiry import ExpirySweeper
from threadline.services.files import FileService
from threadline.services.ingestion import IngestionWorker
from threadline.services.keys import KeyService
from threadline.services.messages import MessageService
from threadline.services.metrics import MetricsService
from threadline.services.references import References
from threadline.services.run_admin import RunAdmin
from threadline.services.runs import RunService
from threadline.services.threads import ThreadService
from threadline.services.uploads import UploadService
from threadline.services.vector_store_files import VectorStoreFileService
from threadline.services.vector_stores import VectorStoreService
from threadline.settings import Settings
from threadline.storage.blobs import BlobStore, LocalBlobStore
from threadline.storage.db import Database, normalise_url

if TYPE_CHECKING:
    from threadline.models.local.sentences import Embed


def build_pipeline(settings: Settings, db: Database) -> Pipeline:
    """What vector store ingestion and search run on: the retrieval library, with
    the embedder the settings name and the runs' tokenizer (``o200k_base``)."""
    return RetrievalPipeline(
        open_index(db), make_embedder(settings), OrdinaryTokenizer(get_encoding("o200k_base"))
    )


def build_services(
    settings: Settings, backend: ModelBackend | None = None, pipeline: Pipeline | None = None
) -> Services:
    """Everything one process runs, from ``settings`` (``backend`` replaces the
    model backend the settings name, ``pipeline`` the ingestion and search pipeline)."""
    db = Database(settings.resolved_database_url, fast_path=settings.sqlite_fast_path)
    refs = References()
    blobs = build_blobs(settings)
    bus = build_bus(settings)
    metrics = Metrics()
    lifecycle = Lifecycle(db, bus, metrics=metrics)
    queue = build_queue(settings)
    model = backend or build_backend(settings, sentence_embedder())
    pipeline = pipeline or build_pipeline(settings, db)
    threads = ThreadService(db, refs)
    searcher = FileSearch(db, pipeline, ready_wait=settings.file_search_ready_wait_seconds)
    code_interpreter = CodeInterpreter(db, blobs, settings)
    metrics.track_sandbox_sessions(lambda: len(code_interpreter.pool or ()))
    threads.on_delete = code_interpreter.close_thread
    toolbox = Toolbox.of([searcher, code_interpreter])
    worker = RunWorker(db, lifecycle, queue, model, settings, toolbox)
    ingestion = IngestionWorker(
        db,
        blobs,
        pipeline,
        concurrency=settings.ingest_concurrency,
        lease_seconds=settings.ingest_lease_seconds,
        sweep_interval=settings.sweep_interval_seconds,
        queue=queue,
    )
    refs.notify_ingestion = ingestion.notify
    files = FileService(db, blobs, settings.max_upload_bytes)
    uploads = UploadService(db, blobs, settings.max_upload_bytes)
    runs = RunService(db, refs, threads, lifecycle, queue, worker.executor, model, settings)
    return Services(
        settings=settings,
        db=db,
        bus=bus,
        backend=model,
        keys=KeyService(db, settings.static_keys(), settings.key_cache_seconds),
        assistants=AssistantService(db, refs),
        threads=threads,
        messages=MessageService(db, refs),
        files=files,
        runs=runs,
        worker=worker,
        vector_stores=VectorStoreService(db, refs, pipeline, ingestion),
        vector_store_files=VectorStoreFileService(db, refs, pipeline, ingestion),
        ingestion=ingestion,
        uploads=uploads,
        expiry=ExpirySweeper(db, files, uploads),
        code_interpreter=code_interpreter,
        metrics=MetricsService(db, metrics),
        run_admin=RunAdmin(db, runs),
    )


def sentence_embedder() -> Embed:
    """all-MiniLM-L6-v2's sentence vectors, for the local model's tool-need gate: a
    copy of its own (about 90 MB, loaded on first use; a missing model leaves the
    gate open), never file_search's, which embeds a large file's chunks for seconds
    at a time with its lock held: a run's model call would wait for it. It leaves the
    BLAS thread limit to file_search's embedder (``THREADLINE_EMBEDDINGS_THREADS``)."""
    return LocalEmbedder(MINILM, threads=None).embed_sync


def build_blobs(settings: Settings) -> BlobStore:
    """File bytes: in an S3-compatible store when ``blob_store`` is ``s3``, else under
    the data directory."""
    if settings.blob_store == "s3":
        from threadline.storage.s3_blobs import S3BlobStore

        assert settings.s3_bucket is not None  # Settings checks it
        return S3BlobStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return LocalBlobStore(settings.files_dir)


def build_bus(settings: Settings) -> EventBus:
    """Run events: on Redis Streams when ``redis_url`` is set, else in this process."""
    if settings.redis_url:
        from threadline.engine.redis_events import RedisEventBus

        return RedisEventBus(
            settings.redis_url,
            prefix=settings.redis_prefix,
            max_events=settings.event_max_per_run,
            retention=settings.event_retention_seconds,
            publish_patience=settings.event_publish_patience_seconds,
        )
    return InMemoryEventBus(
        max_events=settings.event_max_per_run, retention=settings.event_retention_seconds
    )


def build_queue(settings: Settings) -> RunQueue:
    """The run queue: procrastinate on PostgreSQL, or this process's own."""
    if settings.queue == "procrastinate":
        from threadline.queue.procrastinate_queue import ProcrastinateQueue

        return ProcrastinateQueue(
            normalise_url(settings.resolved_database_url),
            concurrency=settings.worker_concurrency,
            heartbeat_seconds=settings.queue_heartbeat_seconds,
            stalled_after_seconds=settings.queue_stalled_seconds,
            abort_poll_seconds=settings.queue_abort_poll_seconds,
        )
    return InProcessQueue(settings.worker_concurrency)
