"""retrieval chunks: the file_search index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 17:05:00.000000

Tables ``retrieval_stores``, ``retrieval_files`` and ``retrieval_chunks`` (see
``storage/tables.py``), plus what each engine searches with:

- SQLite: ``retrieval_chunks_fts``, an FTS5 table over ``retrieval_chunks.text``
  (external content, rowid = ``seq``), kept in sync by triggers;
- PostgreSQL: ``tsv``, a stored generated ``tsvector`` with a GIN index, and, when
  ``CREATE EXTENSION vector`` succeeds, ``embedding_vec`` (pgvector) for HNSW search.
  The HNSW indexes are made per embedding size by the index on first use
  (``retrieval/index/postgres.py``): a vector column needs a fixed size to be indexed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_SQLITE_FTS = [
    # porter stemming over unicode61 words (diacritics folded); external content:
    # the text is read from retrieval_chunks, not stored twice
    """CREATE VIRTUAL TABLE retrieval_chunks_fts USING fts5(
        text, content='retrieval_chunks', content_rowid='seq',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER retrieval_chunks_ai AFTER INSERT ON retrieval_chunks BEGIN
        INSERT INTO retrieval_chunks_fts(rowid, text) VALUES (new.seq, new.text);
    END""",
    """CREATE TRIGGER retrieval_chunks_ad AFTER DELETE ON retrieval_chunks BEGIN
        INSERT INTO retrieval_chunks_fts(retrieval_chunks_fts, rowid, text)
        VALUES ('delete', old.seq, old.text);
    END""",
    """CREATE TRIGGER retrieval_chunks_au AFTER UPDATE OF text ON retrieval_chunks BEGIN
        INSERT INTO retrieval_chunks_fts(retrieval_chunks_fts, rowid, text)
        VALUES ('delete', old.seq, old.text);
        INSERT INTO retrieval_chunks_fts(rowid, text) VALUES (new.seq, new.text);
    END""",
]


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "retrieval_stores",
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", name=op.f("pk_retrieval_stores")),
    )
    op.create_table(
        "retrieval_files",
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("attributes", json, nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name=op.f("pk_retrieval_files")),
    )
    op.create_table(
        "retrieval_chunks",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_retrieval_chunks")),
        sa.UniqueConstraint(
            "vector_store_id", "file_id", "chunk_index", name="uq_retrieval_chunks_position"
        ),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        return
    op.execute(
        "ALTER TABLE retrieval_chunks ADD COLUMN tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
    )
    op.execute("CREATE INDEX ix_retrieval_chunks_tsv ON retrieval_chunks USING gin (tsv)")
    if _pgvector(bind):
        op.execute("ALTER TABLE retrieval_chunks ADD COLUMN embedding_vec vector")


def _pgvector(bind: sa.Connection) -> bool:
    """Whether the pgvector extension is (or could now be made) available."""
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError:
        return False
    return True


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS retrieval_chunks_fts")
    op.drop_table("retrieval_chunks")
    op.drop_table("retrieval_files")
    op.drop_table("retrieval_stores")
