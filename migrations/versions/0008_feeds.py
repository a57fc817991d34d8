"""feeds: the watched feeds with their health, and every item seen in them

The items' two unique keys (GUID within a feed, canonical link across feeds) are the dedupe, so
concurrent polls create each story once. Parallel to 0007 (the desk); a merge revision joins the heads.

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-30 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("added_url", sa.String(length=1024), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("templates", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("utm", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=128), nullable=True),
        sa.Column("next_poll_at", TIME, nullable=False),
        sa.Column("last_fetch_at", TIME, nullable=True),
        sa.Column("last_new_at", TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("errors_in_row", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("fetch_count", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
    )
    op.create_index("ix_feeds_status_next_poll_at", "feeds", ["status", "next_poll_at"], unique=False)
    op.create_table(
        "feed_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.Text(), nullable=False),
        sa.Column("guid_key", sa.String(length=64), nullable=False),
        sa.Column("link_key", sa.String(length=64), nullable=True),
        sa.Column("link", sa.String(length=2048), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("published_at", TIME, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], name=op.f("fk_feed_items_feed_id_feeds")),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"], name=op.f("fk_feed_items_story_id_stories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_items")),
        sa.UniqueConstraint("feed_id", "guid_key", name=op.f("uq_feed_items_feed_id_guid_key")),
        sa.UniqueConstraint("link_key", name=op.f("uq_feed_items_link_key")),
    )
    op.create_index(op.f("ix_feed_items_feed_id"), "feed_items", ["feed_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_feed_items_feed_id"), table_name="feed_items")
    op.drop_table("feed_items")
    op.drop_index("ix_feeds_status_next_poll_at", table_name="feeds")
    op.drop_table("feeds")
