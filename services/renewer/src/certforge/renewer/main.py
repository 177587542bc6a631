"""`certforge-renewer`: finds certificates due for renewal and emits renew commands."""

from __future__ import annotations

from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker, serve
from certforge.renewer.audit_seal import AuditSealer
from certforge.renewer.inventory import InventoryGauges
from certforge.renewer.rollover import ScheduledTakeOvers
from certforge.renewer.scan import RenewalScanner
from certforge.renewer.settings import RenewerSettings


def build(settings: RenewerSettings) -> Worker:
    worker = Worker("renewer", settings)
    scanner = RenewalScanner(
        worker.sessions, worker.subjects, settings.renewer, after_commit=worker.wake_relay
    )
    worker.add_loop(scanner.run)
    worker.add_loop(InventoryGauges(worker.sessions, settings.renewer.inventory_interval).run)
    sealer = AuditSealer(
        worker.database, settings.renewer.audit_seal_interval, settings.renewer.audit_sweep_interval
    )
    worker.add_loop(sealer.run)
    worker.add_loop(ScheduledTakeOvers(worker.sessions, settings.renewer.interval).run)
    return worker


def main() -> None:
    settings = RenewerSettings.load_or_exit("certforge-renewer")
    configure_logging("renewer", settings.log_level)
    serve(build(settings))
