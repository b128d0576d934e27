"""The schema. Each API object is a row: the columns storage filters, orders and
compare-and-sets on, plus ``data``, the object's remaining wire fields as JSON.

``seq`` is a monotonic row number: lists order by it, so objects created in the
same second keep a stable order.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _seq() -> sa.Column[int]:
    return sa.Column("seq", Seq, primary_key=True, autoincrement=True)


api_keys = sa.Table(
    "api_keys",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False, index=True),
    sa.Column("name", sa.String(256), nullable=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_hint", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

assistants = sa.Table(
    "assistants",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_assistants_project_seq", "project_id", "seq"),
)

threads = sa.Table(
    "threads",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_threads_project_seq", "project_id", "seq"),
)

messages = sa.Table(
    "messages",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "thread_id",
        sa.String(64),
        sa.ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_messages_thread_seq", "thread_id", "seq"),
    sa.Index("ix_messages_run", "run_id"),
)

files = sa.Table(
    "files",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_files_project_seq", "project_id", "seq"),
    sa.Index("ix_files_expires_at", "expires_at"),
)

# A file sent in parts: each part's bytes are a blob under the part's id until the
# upload is completed (then joined into the File's blob), cancelled or expired.
uploads = sa.Table(
    "uploads",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_uploads_status_expires_at", "status", "expires_at"),
)

upload_parts = sa.Table(
    "upload_parts",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "upload_id",
        sa.String(64),
        sa.ForeignKey("uploads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_upload_parts_upload", "upload_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "thread_id",
        sa.String(64),
        sa.ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_runs_thread_seq", "thread_id", "seq"),
    sa.Index("ix_runs_status", "status"),
)

run_steps = sa.Table(
    "run_steps",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "run_id",
        sa.String(64),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_run_steps_run_seq", "run_id", "seq"),
)

vector_stores = sa.Table(
    "vector_stores",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_vector_stores_project_seq", "project_id", "seq"),
)

vector_store_file_batches = sa.Table(
    "vector_store_file_batches",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_vector_store_file_batches_store", "vector_store_id"),
)

# One row per (store, file): ``id`` is the File's id, unique within its store. The
# ingestion lease (owner, expiry, attempts) works as the runs' does.
vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("project_id", sa.String(128), nullable=False),
    sa.Column(
        "vector_store_id",
        sa.String(64),
        sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("batch_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("usage_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("content", sa.Text, nullable=True),
    sa.Column("data", Json, nullable=False),
    sa.UniqueConstraint("vector_store_id", "id", name="uq_vector_store_files_store_file"),
    sa.Index("ix_vector_store_files_store_seq", "vector_store_id", "seq"),
    sa.Index("ix_vector_store_files_batch", "batch_id"),
    sa.Index("ix_vector_store_files_status", "status"),
)

# Retrieval: the chunks of the files in each vector store, for file_search.
# ``retrieval_stores.version`` moves with every change of a store's chunks or
# attributes, so a process can tell whether what it cached of a store is current.
# code_interpreter: which session a thread's code runs in now (any worker may run the
# thread's next turn: a worker whose own session is not this one starts afresh), and
# which files each call's code produced, by name (a resumed turn annotates its
# message's ``sandbox:/mnt/data/<name>`` links with them). No foreign keys: the rows
# are the tool's bookkeeping, removed with the thread.
code_sessions = sa.Table(
    "code_sessions",
    metadata,
    sa.Column("thread_id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
)

code_outputs = sa.Table(
    "code_outputs",
    metadata,
    _seq(),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("call_id", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("file_id", sa.String(64), nullable=False),
    sa.Index("ix_code_outputs_run", "run_id"),
    sa.Index("ix_code_outputs_thread", "thread_id"),
)

# Attributes belong to a store's file (set for all its chunks at once), so they
# live in ``retrieval_files``. Outside this metadata (engine-specific, created by
# migration 0002): on SQLite the FTS5 table ``retrieval_chunks_fts`` kept in sync by
# triggers; on PostgreSQL the generated ``tsv`` column with its GIN index, and, where
# the pgvector extension exists, the ``embedding_vec`` column.

retrieval_stores = sa.Table(
    "retrieval_stores",
    metadata,
    sa.Column("vector_store_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
)

retrieval_files = sa.Table(
    "retrieval_files",
    metadata,
    sa.Column("vector_store_id", sa.String(64), primary_key=True),
    sa.Column("file_id", sa.String(64), primary_key=True),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("attributes", Json, nullable=False),
)

retrieval_chunks = sa.Table(
    "retrieval_chunks",
    metadata,
    _seq(),
    sa.Column("vector_store_id", sa.String(64), nullable=False),
    sa.Column("file_id", sa.String(64), nullable=False),
    sa.Column("chunk_index", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("dimensions", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint(
        "vector_store_id", "file_id", "chunk_index", name="uq_retrieval_chunks_position"
    ),
)
