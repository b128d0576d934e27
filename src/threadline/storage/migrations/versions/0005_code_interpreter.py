"""code_interpreter's sessions and produced files

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "code_sessions",
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("thread_id", name=op.f("pk_code_sessions")),
    )
    op.create_table(
        "code_outputs",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_code_outputs")),
    )
    with op.batch_alter_table("code_outputs", schema=None) as batch_op:
        batch_op.create_index("ix_code_outputs_run", ["run_id"], unique=False)
        batch_op.create_index("ix_code_outputs_thread", ["thread_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("code_outputs", schema=None) as batch_op:
        batch_op.drop_index("ix_code_outputs_thread")
        batch_op.drop_index("ix_code_outputs_run")
    op.drop_table("code_outputs")
    op.drop_table("code_sessions")
