"""Development and test infrastructure: embedded NATS and PostgreSQL, a process supervisor and
the `certforge-dev` CLI behind `make run`. Not used by the services at runtime."""

from certforge.devstack.nats import start_nats
from certforge.devstack.ports import free_port, tcp_reachable, url_reachable
from certforge.devstack.postgres import (
    ManagedPostgres,
    create_database,
    database_exists,
    drop_database,
    postgres_refusal,
    start_postgres,
    with_database,
)
from certforge.devstack.process import ManagedProcess
from certforge.devstack.supervisor import ProcessGroup

__all__ = [
    "ManagedPostgres",
    "ManagedProcess",
    "ProcessGroup",
    "create_database",
    "database_exists",
    "drop_database",
    "free_port",
    "postgres_refusal",
    "start_nats",
    "start_postgres",
    "tcp_reachable",
    "url_reachable",
    "with_database",
]
