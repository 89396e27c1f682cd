"""Pushing PO events to retailers: every change, through the retailer's connector, at least
once, in order per order, deduplicable by the event's id.

``po_event`` is the outbox. A run first *plans*: each event not pushed yet gets a row in the
delivery log (``po_event_delivery``) per destination of its order's connector (an order with
no connector: each of the retailer's connectors): its webhook, if one is set
(``supplyline connector webhook``), and for an ``sftp`` connector the status files in its
SFTP status folder. An event with no destination is done at once.

Then, one task per connector, it *delivers*. An order's events go out one after another: a
delivery that is not done (the receiver failed and it waits for its next try) holds back the
later events of the same order to the same destination, never other orders'. Each delivery is
tried at most once per run; a failed try waits ``push_retry_delay_seconds``, doubled each
time with jitter up to ``push_max_retry_delay_seconds`` (or the receiver's ``Retry-After``),
for at most ``push_max_attempts`` tries, then it is ``failed``. A webhook answer that can never
succeed (a 4xx other than 408 and 429) makes the delivery ``failed`` at once, with the
receiver's message, and does not hold back what follows. An event is pushed
(``po_event.pushed_at``) once none of its deliveries is pending.

Runs take a lease on the deliveries they are about to make (a conditional UPDATE), so two
runs at once never deliver one order's events side by side or out of order.
"""

from __future__ import annotations

import hashlib
import posixpath
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from blocks.retailer_webhook import DeliveryAnswer, RetailerWebhook, WebhookClient
from blocks.sftp import SftpServer
from models.catalog import utcnow
from models.db import as_utc, chunked, session_scope
from models.orders import PoEvent, PurchaseOrder, RetailOrder
from models.relationships import RetailerConnector
from models.retailer_push import PoEventDelivery
from supplyline.settings import get_settings
from tasks.audit import record_event, snapshot
from tasks.connectors import get_connector, retailer_block_name, webhook_block_name
from tasks.retailer_events import EventBody, event_bodies, event_key, iso

STATUS_FILE_PREFIX = "po-events-"
# A receiver that failed this many tries in a row in one run is left alone until the next run:
# trying every order's next event against a server that is down only burns the run's time.
FAILURES_BEFORE_PAUSE = 3
_CHUNK = 500
_DELIVERIES = PoEventDelivery.__table__  # type: ignore[attr-defined]


def destinations(connector: RetailerConnector) -> list[str]:
    """The channels a connector's events go out by."""
    channels = []
    if connector.settings.get("webhook"):
        channels.append("webhook")
    if connector.connector_type == "sftp":
        channels.append("sftp")
    return channels


# --- planning ----------------------------------------------------------------------------------


@dataclass
class PlanOutcome:
    events: int = 0
    deliveries: int = 0
    without_destination: int = 0

    def add(self, other: PlanOutcome) -> None:
        self.events += other.events
        self.deliveries += other.deliveries
        self.without_destination += other.without_destination


def plan_deliveries(session: Session, *, limit: int) -> PlanOutcome:
    """Give up to ``limit`` events not pushed (nor planned) yet their deliveries."""
    rows = session.execute(
        sa.select(
            PoEvent.id, PurchaseOrder.order_id, RetailOrder.connector_id, RetailOrder.retailer_id
        )
        .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
        .join(RetailOrder, RetailOrder.id == PurchaseOrder.order_id)  # type: ignore[arg-type]
        .where(
            PoEvent.pushed_at.is_(None),  # type: ignore[union-attr]
            ~sa.exists().where(PoEventDelivery.event_id == PoEvent.id),
        )
        .order_by(PoEvent.id)  # type: ignore[arg-type]
        .limit(limit)
    ).all()
    if not rows:
        return PlanOutcome()
    connectors = session.exec(
        select(RetailerConnector).where(
            RetailerConnector.retailer_id.in_({r.retailer_id for r in rows}),  # type: ignore[attr-defined]
            RetailerConnector.removed_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    by_id = {c.id: c for c in connectors}
    by_retailer: dict[int, list[RetailerConnector]] = defaultdict(list)
    for connector in connectors:
        by_retailer[connector.retailer_id].append(connector)
    now = utcnow()
    deliveries: list[dict[str, Any]] = []
    nowhere: list[int] = []
    for event_id, order_id, connector_id, retailer_id in rows:
        if connector_id is None:
            targets = by_retailer[retailer_id]
        else:
            targets = [by_id[connector_id]] if connector_id in by_id else []
        made = [
            {
                "event_id": event_id,
                "connector_id": connector.id,
                "channel": channel,
                "order_id": order_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for connector in targets
            for channel in destinations(connector)
        ]
        if made:
            deliveries.extend(made)
        else:
            nowhere.append(event_id)
    if deliveries:
        _insert_ignoring_duplicates(session, deliveries)
    mark_pushed(session, nowhere)
    return PlanOutcome(len(rows), len(deliveries), len(nowhere))


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> None:
    """Two runs planning the same event at once: the unique key keeps one delivery each."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(_DELIVERIES).on_conflict_do_nothing(
        index_elements=["event_id", "connector_id", "channel"]
    )
    for chunk in chunked(rows, _CHUNK):
        session.execute(statement, chunk)


def mark_pushed(session: Session, event_ids: Iterable[int]) -> None:
    """Events with no delivery left pending are pushed."""
    ids = sorted(set(event_ids))
    now = utcnow()
    pending = sa.exists().where(
        PoEventDelivery.event_id == PoEvent.id, PoEventDelivery.status == "pending"
    )
    for chunk in chunked(ids, _CHUNK):
        session.execute(
            sa.update(PoEvent)
            .where(
                PoEvent.id.in_(chunk),  # type: ignore[union-attr]
                PoEvent.pushed_at.is_(None),  # type: ignore[union-attr]
                ~pending,
            )
            .values(pushed_at=now)
            .execution_options(synchronize_session=False)
        )


def connectors_with_due_deliveries(session: Session) -> list[str]:
    """Codes of the connectors that have a delivery to try now (or, removed, to end)."""
    return list(
        session.exec(
            select(RetailerConnector.code)
            .where(
                sa.exists().where(
                    PoEventDelivery.connector_id == RetailerConnector.id,
                    PoEventDelivery.status == "pending",
                    sa.or_(
                        PoEventDelivery.next_attempt_at <= utcnow(),
                        RetailerConnector.removed_at.is_not(None),  # type: ignore[union-attr]
                    ),
                )
            )
            .order_by(RetailerConnector.code)
        )
    )


def set_connector_webhook(
    session: Session, code: str, url: str | None, *, actor: str
) -> RetailerConnector:
    """Record that the connector's events go to ``url`` (its block holds the signing secret);
    with ``url`` None, that they no longer go out by webhook: its pending webhook deliveries
    fail, saying so."""
    connector = get_connector(session, code)
    before = snapshot(connector)
    settings = {k: v for k, v in connector.settings.items() if k != "webhook"}
    if url is not None:
        settings["webhook"] = {"url": url, "block": webhook_block_name(connector.code)}
    connector.settings = settings
    session.add(connector)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="connector.webhook" if url else "connector.webhook_remove",
        entity_type="connector",
        entity_id=connector.id,
        before=before,
        after=snapshot(connector),
    )
    if url is None:
        fail_undeliverable(session, connector)
    return connector


# --- choosing what to deliver -----------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A delivery this run holds the lease of."""

    delivery_id: int
    event_id: int
    order_id: int
    channel: str
    attempts: int


def claim_due(
    session: Session,
    connector_id: int,
    *,
    limit: int,
    tried: set[int],
    lease_seconds: float,
) -> dict[str, list[list[Due]]]:
    """Lease the deliveries that may go now, as queues per channel, one queue per order in
    event order.

    A queue is the start of an order's pending deliveries, up to the first one that may not go
    yet: its next try is later, another run holds it, or this run tried it already.
    """
    now = utcnow()
    mine = (PoEventDelivery.connector_id == connector_id, PoEventDelivery.status == "pending")
    earlier = aliased(PoEventDelivery)
    at_head = ~sa.exists().where(
        earlier.connector_id == PoEventDelivery.connector_id,
        earlier.order_id == PoEventDelivery.order_id,
        earlier.channel == PoEventDelivery.channel,
        earlier.status == "pending",
        earlier.event_id < PoEventDelivery.event_id,
    )
    # The orders whose next delivery may go now: read first, so that orders held back by a
    # failing receiver never crowd the others out of the batch.
    heads = session.execute(
        sa.select(PoEventDelivery.id, PoEventDelivery.order_id)
        .where(
            *mine,
            at_head,
            PoEventDelivery.next_attempt_at <= now,
            sa.or_(
                PoEventDelivery.lease_until.is_(None),  # type: ignore[union-attr]
                PoEventDelivery.lease_until < now,  # type: ignore[operator]
            ),
        )
        .order_by(PoEventDelivery.event_id)  # type: ignore[arg-type]
        .limit(limit + len(tried))
    ).all()
    orders = list(dict.fromkeys(h.order_id for h in heads if h.id not in tried))[:limit]
    if not orders:
        return {}
    rows = session.execute(
        sa.select(
            PoEventDelivery.id,
            PoEventDelivery.event_id,
            PoEventDelivery.order_id,
            PoEventDelivery.channel,
            PoEventDelivery.attempts,
            PoEventDelivery.next_attempt_at,
            PoEventDelivery.lease_until,
        )
        .where(*mine, PoEventDelivery.order_id.in_(orders))  # type: ignore[attr-defined]
        .order_by(PoEventDelivery.event_id, PoEventDelivery.channel)  # type: ignore[arg-type]
        .limit(limit)
    ).all()

    def free(row: Any) -> bool:
        leased = as_utc(row.lease_until)
        return (
            row.id not in tried
            and as_utc(row.next_attempt_at) <= now  # type: ignore[operator]
            and (leased is None or leased < now)
        )

    wanted = [row for queue in _queues(rows) for row in _prefix(queue, free)]
    if not wanted:
        return {}
    claimed: set[int] = set()
    lease_until = now + timedelta(seconds=lease_seconds)
    for part in chunked(wanted, _CHUNK):
        chunk = [row.id for row in part]
        claimed.update(
            session.execute(
                sa.update(PoEventDelivery)
                .where(
                    PoEventDelivery.id.in_(chunk),  # type: ignore[union-attr]
                    PoEventDelivery.status == "pending",
                    sa.or_(
                        PoEventDelivery.lease_until.is_(None),  # type: ignore[union-attr]
                        PoEventDelivery.lease_until < now,  # type: ignore[operator]
                    ),
                )
                .values(lease_until=lease_until)
                .returning(PoEventDelivery.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
    by_channel: dict[str, list[list[Due]]] = defaultdict(list)
    unused: list[int] = []
    for queue in _queues(wanted):
        mine = _prefix(queue, lambda row: row.id in claimed)
        unused.extend(row.id for row in queue[len(mine) :] if row.id in claimed)
        if mine:
            by_channel[mine[0].channel].append(
                [Due(r.id, r.event_id, r.order_id, r.channel, r.attempts) for r in mine]
            )
    release(session, unused)
    return dict(by_channel)


def _queues(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """Rows grouped by (order, channel), each group in event order, the groups in the order of
    their first event."""
    groups: dict[tuple[int, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.order_id, row.channel), []).append(row)
    yield from groups.values()


def _prefix(queue: list[Any], may_go: Callable[[Any], bool]) -> list[Any]:
    taken = []
    for row in queue:
        if not may_go(row):
            break
        taken.append(row)
    return taken


def release(session: Session, delivery_ids: list[int]) -> None:
    """Give back the lease of deliveries this run will not make."""
    for chunk in chunked(delivery_ids, _CHUNK):
        session.execute(
            sa.update(PoEventDelivery)
            .where(PoEventDelivery.id.in_(chunk))  # type: ignore[union-attr]
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )


# --- delivering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    due: Due
    answer: DeliveryAnswer


def post_queues(
    client: WebhookClient,
    queues: list[list[Due]],
    bodies: dict[int, EventBody],
    *,
    deadline: float,
    request_seconds: float,
) -> tuple[list[Attempt], bool]:
    """POST each order's events in order; a try to retry stops its order's queue. Returns the
    tries and whether the receiver failed so often in a row (or time ran so short) that the
    rest waits for the next run."""
    attempts: list[Attempt] = []
    failures_in_a_row = 0
    for queue in queues:
        for due in queue:
            # httpx's timeout bounds each phase of a request (connect, send, answer).
            if time.monotonic() + 3 * request_seconds > deadline:
                return attempts, True
            event = bodies[due.event_id]
            answer = client.post_event(
                event.body,
                event_id=event.event_id,
                event_type=event.event_type,
                attempt=due.attempts + 1,
            )
            attempts.append(Attempt(due, answer))
            if answer.verdict != "retry":
                failures_in_a_row = 0
                continue
            failures_in_a_row += 1
            if failures_in_a_row >= FAILURES_BEFORE_PAUSE:
                return attempts, True
            break
    return attempts, False


def status_file_name(event_ids: list[int]) -> str:
    """The same events give the same name: a retried upload finds its file already there."""
    digest = hashlib.sha256(",".join(map(str, event_ids)).encode()).hexdigest()[:10]
    return f"{STATUS_FILE_PREFIX}{event_ids[0]:012d}-{event_ids[-1]:012d}-{digest}.jsonl"


def upload_status_file(
    server: SftpServer, folder: str, queues: list[list[Due]], bodies: dict[int, EventBody]
) -> list[Attempt]:
    """Write the queued events, in event order, as one JSON Lines file in ``folder`` (under a
    temporary name, then renamed); all of them are delivered, or all wait for another try."""
    queued = sorted((due for queue in queues for due in queue), key=lambda d: d.event_id)
    if not queued:
        return []
    event_ids = [due.event_id for due in queued]
    name = status_file_name(event_ids)
    try:
        with server.get_client() as sftp, tempfile.TemporaryDirectory(prefix="status-") as work:
            sftp.ensure_folder(folder)
            if sftp.stat(posixpath.join(folder, name)) is None:
                local = Path(work) / name
                local.write_bytes(b"".join(bodies[i].body + b"\n" for i in event_ids))
                sftp.upload(local, folder, name)
        answer = DeliveryAnswer("delivered", None, f"in {posixpath.join(folder, name)}")
    except Exception as exc:
        answer = DeliveryAnswer("retry", None, f"status file {name}: {type(exc).__name__}: {exc}")
    return [Attempt(due, answer) for due in queued]


# --- recording ---------------------------------------------------------------------------------


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubled each time, with
    jitter, never under the receiver's Retry-After, never over the longest wait."""
    settings = get_settings()
    base = settings.push_retry_delay_seconds * 2 ** (attempts - 1)
    delay = base * (0.5 + random.random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.push_max_retry_delay_seconds)


def record_attempts(session: Session, attempts: list[Attempt], now: datetime | None = None) -> None:
    """Write each try's outcome to the delivery log (one executemany), and mark the events that
    have nothing pending any more as pushed."""
    if not attempts:
        return
    now = now or utcnow()
    max_attempts = get_settings().push_max_attempts
    rows = []
    for attempt in attempts:
        answer, tries = attempt.answer, attempt.due.attempts + 1
        status, message = "pending", answer.message
        if answer.verdict == "delivered":
            status, message = "delivered", None
        elif answer.verdict == "refused":
            status = "failed"
        elif tries >= max_attempts:
            status, message = "failed", f"gave up after {tries} tries; last: {answer.message}"
        rows.append(
            {
                "delivery_id": attempt.due.delivery_id,
                "status": status,
                "attempts": tries,
                "next_attempt_at": now
                + timedelta(seconds=retry_delay(tries, answer.retry_after_seconds))
                if status == "pending"
                else now,
                "delivered_at": now if status == "delivered" else None,
                "last_status_code": answer.status_code,
                "last_error": message,
                "lease_until": None,
                "updated_at": now,
            }
        )
    session.connection().execute(
        _DELIVERIES.update()
        .where(_DELIVERIES.c.id == sa.bindparam("delivery_id"))
        .values(
            {
                name: sa.bindparam(name)
                for name in (
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "delivered_at",
                    "last_status_code",
                    "last_error",
                    "lease_until",
                    "updated_at",
                )
            }
        ),
        rows,
    )
    mark_pushed(session, (a.due.event_id for a in attempts))


def fail_undeliverable(session: Session, connector: RetailerConnector) -> int:
    """Pending deliveries that can no longer go anywhere fail with the reason: the connector
    was removed, or its webhook was."""
    reasons = []
    if connector.removed_at is not None:
        reasons.append((None, f"connector {connector.code} was removed"))
    elif "webhook" not in destinations(connector):
        reasons.append(("webhook", f"connector {connector.code} has no webhook any more"))
    failed = 0
    for channel, reason in reasons:
        query = (
            sa.update(PoEventDelivery)
            .where(
                PoEventDelivery.connector_id == connector.id,
                PoEventDelivery.status == "pending",
            )
            .values(status="failed", last_error=reason, lease_until=None, updated_at=utcnow())
            .returning(PoEventDelivery.event_id)
            .execution_options(synchronize_session=False)
        )
        if channel is not None:
            query = query.where(PoEventDelivery.channel == channel)
        event_ids = list(session.execute(query).scalars())
        mark_pushed(session, event_ids)
        failed += len(event_ids)
    return failed


# --- the task ----------------------------------------------------------------------------------


@dataclass
class PushOutcome:
    """What one connector's push did."""

    connector: str
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    pending: int = 0
    paused: bool = False
    broken: bool = False  # the task itself failed (e.g. the database): see problems
    problems: list[str] = field(default_factory=list)

    def add(self, attempts: list[Attempt], max_attempts: int) -> None:
        for attempt in attempts:
            verdict = attempt.answer.verdict
            if verdict == "delivered":
                self.delivered += 1
                continue
            if verdict == "refused" or attempt.due.attempts + 1 >= max_attempts:
                self.failed += 1
            else:
                self.retrying += 1
            if len(self.problems) < 20:
                self.problems.append(
                    f"{self.connector} {attempt.due.channel} {event_key(attempt.due.event_id)}: "
                    f"{attempt.answer.message}"
                )


@task(
    name="plan-retailer-pushes",
    task_run_name="plan-retailer-pushes",
    cache_policy=NO_CACHE,
)
def plan_pushes(batch_size: int | None = None) -> PlanOutcome:
    """Give every event not pushed yet its deliveries, a batch per transaction."""
    size = batch_size or get_settings().push_batch_size
    total = PlanOutcome()
    while True:
        with session_scope(immediate=True) as session:
            planned = plan_deliveries(session, limit=size)
        total.add(planned)
        if planned.events < size:
            return total


@task(name="push-events", task_run_name="push-events-{connector_code}", cache_policy=NO_CACHE)
def push_events(connector_code: str, batch_size: int | None = None) -> PushOutcome:
    """Deliver a connector's due events (webhook POSTs, a status file per round over SFTP),
    order by order, round after round, and record every try."""
    settings = get_settings()
    size = batch_size or settings.push_batch_size
    with session_scope(immediate=True) as session:
        connector = get_connector(session, connector_code, removed_too=True)
        outcome = PushOutcome(connector.code, failed=fail_undeliverable(session, connector))
    tried: set[int] = set()
    with _Destinations(connector, time.monotonic() + settings.push_lease_seconds) as sending:
        while not outcome.paused:
            with session_scope(immediate=True) as session:
                queues = claim_due(
                    session,
                    connector.id,  # type: ignore[arg-type]
                    limit=size,
                    tried=tried,
                    lease_seconds=settings.push_lease_seconds,
                )
                bodies = event_bodies(session, (d.event_id for d in _all(queues)))
            if not queues:
                break
            attempts, outcome.paused = sending.deliver(queues, bodies)
            attempted = {a.due.delivery_id for a in attempts}
            with session_scope(immediate=True) as session:
                record_attempts(session, attempts)
                release(
                    session, [d.delivery_id for d in _all(queues) if d.delivery_id not in attempted]
                )
            outcome.add(attempts, settings.push_max_attempts)
            tried |= attempted
            if not attempts:
                break
    with session_scope() as session:
        outcome.pending = session.execute(
            sa.select(sa.func.count())
            .select_from(PoEventDelivery)
            .where(
                PoEventDelivery.connector_id == connector.id,
                PoEventDelivery.status == "pending",
            )
        ).scalar_one()
    _log(outcome)
    return outcome


def _all(queues: dict[str, list[list[Due]]]) -> Iterator[Due]:
    for channel_queues in queues.values():
        for queue in channel_queues:
            yield from queue


class _Destinations:
    """A connector's destinations for one task run: its webhook client, opened on first use
    and kept alive between events, and its SFTP server."""

    def __init__(self, connector: RetailerConnector, deadline: float) -> None:
        self._connector = connector
        self._deadline = deadline
        self._stack = ExitStack()
        self._webhook: WebhookClient | None = None
        self._webhook_timeout = 0.0

    def __enter__(self) -> _Destinations:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stack.close()

    def deliver(
        self, queues: dict[str, list[list[Due]]], bodies: dict[int, EventBody]
    ) -> tuple[list[Attempt], bool]:
        """One round of tries; and whether the rest should wait for the next run."""
        attempts: list[Attempt] = []
        pause = False
        if "webhook" in queues:
            posted, pause = self._post(queues["webhook"], bodies)
            attempts += posted
        if "sftp" in queues:
            attempts += self._upload(queues["sftp"], bodies)
        return attempts, pause

    def _post(
        self, queues: list[list[Due]], bodies: dict[int, EventBody]
    ) -> tuple[list[Attempt], bool]:
        name = webhook_block_name(self._connector.code)
        if self._webhook is None:
            try:
                block = RetailerWebhook.load(name)
            except Exception as exc:
                problem = DeliveryAnswer(
                    "retry",
                    None,
                    f"the block {name} cannot be loaded ({type(exc).__name__}); set it with "
                    f"supplyline connector webhook",
                )
                return [Attempt(queue[0], problem) for queue in queues], True
            self._webhook_timeout = block.timeout_seconds
            self._webhook = self._stack.enter_context(block.client())
        return post_queues(
            self._webhook,
            queues,
            bodies,
            deadline=self._deadline,
            request_seconds=self._webhook_timeout,
        )

    def _upload(self, queues: list[list[Due]], bodies: dict[int, EventBody]) -> list[Attempt]:
        name = retailer_block_name(self._connector.code)
        try:
            server = SftpServer.load(name)
        except Exception as exc:
            problem = DeliveryAnswer(
                "retry",
                None,
                f"the block {name} cannot be loaded ({type(exc).__name__}); set it with "
                f"supplyline connector sftp",
            )
            return [Attempt(due, problem) for queue in queues for due in queue]
        folder = str(self._connector.settings["status_folder"])
        return upload_status_file(server, folder, queues, bodies)


def _log(outcome: PushOutcome) -> None:
    logger = get_run_logger()
    logger.info(
        "%s: %d delivered, %d to retry, %d failed, %d pending%s",
        outcome.connector,
        outcome.delivered,
        outcome.retrying,
        outcome.failed,
        outcome.pending,
        " (the receiver kept failing: the rest waits for the next run)" if outcome.paused else "",
    )
    for problem in outcome.problems[:5]:
        logger.warning("%s", problem)


def redeliver(
    session: Session, *, connector_code: str | None = None, event_ids: list[int] | None = None
) -> int:
    """Give failed deliveries a new round of tries (e.g. once a retailer fixed its receiver):
    those of one connector, or of some events, or all. Returns how many."""
    query = (
        sa.update(PoEventDelivery)
        .where(PoEventDelivery.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), updated_at=utcnow())
        .returning(PoEventDelivery.event_id)
        .execution_options(synchronize_session=False)
    )
    if connector_code is not None:
        connector = get_connector(session, connector_code)
        query = query.where(PoEventDelivery.connector_id == connector.id)
    if event_ids is not None:
        query = query.where(PoEventDelivery.event_id.in_(event_ids))  # type: ignore[attr-defined]
    again = sorted(set(session.execute(query).scalars()))
    for chunk in chunked(again, _CHUNK):
        session.execute(
            sa.update(PoEvent)
            .where(PoEvent.id.in_(chunk))  # type: ignore[union-attr]
            .values(pushed_at=None)
            .execution_options(synchronize_session=False)
        )
    return len(again)


def delivery_log(
    session: Session,
    *,
    connector_code: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest deliveries, with their event, PO, order and last answer."""
    query = (
        sa.select(
            PoEventDelivery,
            RetailerConnector.code,
            PoEvent.kind,
            PurchaseOrder.po_number,
            RetailOrder.source_order_id,
        )
        .join(RetailerConnector, RetailerConnector.id == PoEventDelivery.connector_id)  # type: ignore[arg-type]
        .join(PoEvent, PoEvent.id == PoEventDelivery.event_id)  # type: ignore[arg-type]
        .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
        .join(RetailOrder, RetailOrder.id == PoEventDelivery.order_id)  # type: ignore[arg-type]
        .order_by(PoEventDelivery.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    if connector_code is not None:
        query = query.where(RetailerConnector.code == connector_code)
    if status is not None:
        query = query.where(PoEventDelivery.status == status)
    return [
        {
            "event_id": event_key(delivery.event_id),
            "type": f"po.{kind}",
            "connector": code,
            "channel": delivery.channel,
            "order_id": order_id,
            "po_number": po_number,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "next_attempt_at": iso(delivery.next_attempt_at)
            if delivery.status == "pending"
            else None,
            "delivered_at": iso(delivery.delivered_at),
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
        }
        for delivery, code, kind, po_number, order_id in session.execute(query)
    ]
