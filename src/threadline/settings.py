"""All of threadline's settings, in one typed object read from ``THREADLINE_*``.

Build it once (``Settings()``) at start-up and pass it down; no other module reads
the environment. The README documents every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ModelBackendName = Literal["local", "openai", "scripted"]
EmbedderName = Literal["local", "openai", "hash"]
QueueName = Literal["inprocess", "procrastinate"]
SandboxChoice = Literal["auto", "gvisor", "bwrap", "off"]
BlobStoreName = Literal["local", "s3"]
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    # --- server -----------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = None
    """SQLAlchemy async URL; default: SQLite at ``<data_dir>/threadline.db``."""
    sqlite_fast_path: bool = True
    """On SQLite, the ``storage.sqlite_fast`` path (off: plain aiosqlite)."""
    api_keys: str = ""
    """Static keys, comma separated: ``KEY`` (project ``default``) or ``PROJECT:KEY``.
    Keys made with ``threadline keys create`` live in the database and add to these."""
    key_cache_seconds: float = Field(default=1.0, ge=0)
    """How long a server trusts its copy of the stored keys: a key revoked (or made)
    by another process counts within this many seconds."""
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    expiry_sweep_seconds: float = Field(default=30.0, gt=0)
    """How often files past ``expires_at`` are deleted and overdue uploads expired."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    log_level: str = "info"
    log_format: LogFormat = "text"
    """``json``: one JSON object a line, with ``request_id``, ``run_id``,
    ``thread_id`` and ``project`` where the line has them."""
    request_head_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request's line and headers must arrive within this long (slow clients)."""
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """The longest wait between two pieces of a request body before the connection
    is closed."""
    http_keep_alive_seconds: int = Field(default=75, ge=1)
    """How long an idle keep-alive connection stays open. Longer than clients' pools
    keep one (httpx, and so the OpenAI SDKs: 5 s; aiohttp: 15 s) and than a load
    balancer's idle timeout, so that the client side always closes first: a close
    from this side races the client's next request on the connection."""

    # --- file bytes -------------------------------------------------------------
    blob_store: BlobStoreName = "local"
    """Where uploads' bytes live: ``local`` (``<data_dir>/files``) or ``s3`` (an
    S3-compatible object store every process reads)."""
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    """Default: AWS's own endpoint for ``s3_region``; set it for MinIO, Ceph, R2…"""
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    """With the secret: these keys; without: botocore's chain (``AWS_*``, profile, role)."""
    s3_secret_access_key: str | None = None
    s3_prefix: str = "threadline/files/"

    # --- operations -------------------------------------------------------------
    metrics_token: str | None = None
    """When set, ``/metrics`` asks for ``Authorization: Bearer <token>`` (API keys
    do not open it: it counts every project's runs)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve ``/metrics`` on this port of its own (``threadline worker`` processes
    serve it only so), and not on the API's port."""
    metrics_host: str | None = None
    """Where the metrics port listens; default: ``host``."""

    # --- runs -------------------------------------------------------------------
    run_expires_seconds: int = Field(default=600, ge=1)
    run_lease_seconds: float = Field(default=15.0, gt=0)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    worker_concurrency: int = Field(default=32, ge=1)
    poll_after_ms: int = Field(default=500, ge=0)
    run_turn_model_calls: int = Field(default=8, ge=2, le=100)
    """The most model calls one turn makes while it executes built-in tools (the
    last one may not call a built-in)."""

    # --- vector stores ----------------------------------------------------------
    ingest_concurrency: int = Field(default=2, ge=1)
    file_search_ready_wait_seconds: float = Field(default=60.0, ge=0)
    """How long a run's search waits for files still being ingested into its stores."""
    """Files ingested (parsed, chunked, embedded, indexed) at once per process."""
    ingest_lease_seconds: float = Field(default=30.0, gt=0)
    """How long a file's ingestion is held by one process without renewing; a file
    whose lease lapses (its process died) is taken up again, at most 3 attempts."""

    # --- scale-out ----------------------------------------------------------------
    worker: bool = True
    """Whether this process executes runs (off: the API only; ``serve --no-worker``)."""
    queue: QueueName = "inprocess"
    """``procrastinate``: runs queued in PostgreSQL for every worker process."""
    redis_url: str | None = None
    """Redis for run events (Streams), shared by every process; default: in memory."""
    redis_prefix: str = "threadline:"
    event_retention_seconds: float = Field(default=900.0, gt=0)
    event_max_per_run: int = Field(default=20_000, ge=16)
    event_publish_patience_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long a publisher waits for an unreachable Redis before it fails the turn;
    a stream quiet for longer (plus 2 s) ends with the stored run once it ended."""
    queue_heartbeat_seconds: float = Field(default=10.0, gt=0)
    queue_stalled_seconds: float = Field(default=30.0, gt=0)
    """A worker whose heartbeat is this old is dead: its runs go to the sweeper."""
    queue_abort_poll_seconds: float = Field(default=5.0, gt=0)
    worker_grace_seconds: float = Field(default=5.0, ge=0)
    """On SIGTERM, how long running turns may finish before they are handed back."""

    # --- models -----------------------------------------------------------------
    model_backend: ModelBackendName | None = None
    """Which backend runs models; default ``openai`` when ``openai_base_url`` is set,
    else ``local``."""
    model_map: str = ""
    """Requested-name to served-name mapping, ``gpt-4o=llama3,gpt-4o-mini=qwen``."""
    openai_base_url: str | None = None
    openai_api_key: str = "not-needed"
    openai_max_retries: int = Field(default=3, ge=0)
    openai_timeout_seconds: float = Field(default=600.0, gt=0)
    openai_context_window: int = Field(default=128_000, ge=256)
    local_model: Literal["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] = "qwen2.5-coder-1.5b"
    local_model_path: Path | None = None
    """Any GGUF file of your own; skips the assembly of the shipped weights."""
    local_context_window: int = Field(default=8192, ge=512)
    local_threads: int | None = None
    local_tool_gate: bool = True
    """Answer requests that need no tool without offering the functions, and try a
    call for those that surely need one, as the tool-need gate
    (``models/local/need.py``) judges them; off: the model decides."""
    local_tool_router: bool = True
    """Decode a first call again for the offered function closest to the request when
    the one the model picked is far from it (``models/local/route.py``); off: the
    model's pick stands."""

    # --- file_search embeddings ------------------------------------------------------
    embedder: EmbedderName = "local"
    """``local`` (all-MiniLM-L6-v2, offline), ``openai`` (any ``/v1/embeddings``) or
    ``hash`` (deterministic, for tests)."""
    embeddings_base_url: str | None = None
    """Default: ``openai_base_url`` (then OpenAI's own)."""
    embeddings_api_key: str | None = None
    """Default: ``openai_api_key``."""
    embeddings_model: str = "text-embedding-3-small"
    embeddings_dimensions: int | None = Field(default=None, ge=8, le=16384)
    """Width of the endpoint's vectors; needed for models other than OpenAI's own."""
    embeddings_windows: int = Field(default=4, ge=1, le=16)
    """256-word-piece windows the ``local`` embedder reads of each text (4 covers an
    800-token chunk; 1 reads only the start, about 3.5 times faster)."""
    embeddings_threads: int = Field(default=1, ge=0)
    """BLAS threads of the ``local`` embedder (process-wide); 0: BLAS's default (all cores)."""

    # --- code_interpreter's sandbox ------------------------------------------------
    sandbox: SandboxChoice = "auto"
    """``auto`` takes the strongest that starts here: gVisor, else bubblewrap."""
    sandbox_max_sessions: int = Field(default=16, ge=1)
    sandbox_idle_seconds: float = Field(default=3600.0, gt=0)
    sandbox_timeout_seconds: float = Field(default=60.0, gt=0)
    sandbox_memory_mb: int = Field(default=1024, ge=128)
    sandbox_session_memory_mb: int = Field(default=2048, ge=256)
    """All of a session's processes together, its files in ``/mnt/data`` and ``/tmp`` too."""
    sandbox_python: Path = Path("/usr/bin/python3")
    """Interpreter inside the sandbox; it must match the packages' Python version."""
    sandbox_packages: Path | None = Path(".sandbox-packages")
    """numpy, pandas, matplotlib… for the sandbox (``scripts/setup.sh`` installs them)."""

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _roles_fit(self) -> Settings:
        if not self.worker and self.queue != "procrastinate":
            raise ValueError(
                "an API-only process (THREADLINE_WORKER=off) needs a shared queue: "
                "THREADLINE_QUEUE=procrastinate"
            )
        if self.queue == "procrastinate" and not self.resolved_database_url.startswith(
            ("postgresql", "postgres:")
        ):
            raise ValueError("THREADLINE_QUEUE=procrastinate needs a PostgreSQL database")
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("THREADLINE_BLOB_STORE=s3 needs THREADLINE_S3_BUCKET")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'threadline.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def resolved_model_backend(self) -> ModelBackendName:
        if self.model_backend is not None:
            return self.model_backend
        return "openai" if self.openai_base_url else "local"

    def static_keys(self) -> dict[str, str]:
        """Static API keys mapped to their project ids."""
        keys: dict[str, str] = {}
        for raw in self.api_keys.split(","):
            entry = raw.strip()
            if not entry:
                continue
            project, sep, key = entry.partition(":")
            if sep and project and key:
                keys[key] = project
            else:
                keys[entry] = "default"
        return keys

    def model_mapping(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for raw in self.model_map.split(","):
            requested, sep, served = raw.strip().partition("=")
            if sep and requested.strip() and served.strip():
                mapping[requested.strip()] = served.strip()
        return mapping
