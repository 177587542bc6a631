"""Async engine and session factory; built by each service's `main` from its settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.db.urls import sqlalchemy_url

SessionFactory = async_sessionmaker[AsyncSession]


def async_url(url: str) -> str:
    """Accept `postgresql://`, `postgres://` or `postgresql+asyncpg://`, one host or several;
    return the form of SQLAlchemy's asyncpg dialect (`certforge.common.db.urls`)."""
    return sqlalchemy_url(url)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip on every checkout. A connection that died is
        # discarded when its use fails (a transient error the callers retry: nack, 503).
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
