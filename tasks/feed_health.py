"""Feed health: per supplier, when its last catalog file came, its last success, and whether its
files are being rejected more than they used to be.

**Stale.** A supplier is stale when its newest catalog file (any source, any outcome, a
duplicate too: it did send something) is older than its stale time, or, with no file at all,
when it was registered longer ago than that. The stale time is the supplier's own (the
feed-health flow's ``stale_hours`` parameter) or ``SUPPLYLINE_FEED_STALE_HOURS``.

**Rejection rate.** A file's rejection rate is its share of rejected rows (``rows_invalid /
rows_total``); a file rejected whole (unreadable, a missing column: no rows judged) counts as 1.
Files still processing, failed ones (the fault was ours, not the supplier's) and duplicates do
not count. The *recent* rate is the mean over the supplier's last ``recent_files`` counted files
(``SUPPLYLINE_FEED_RECENT_FILES``, 3); the *baseline* rate the mean over up to
``baseline_files`` counted files before those (``SUPPLYLINE_FEED_BASELINE_FILES``, 20). Each file
weighs the same, whatever its size. The rate *jumps* when the recent window is full, the
baseline holds at least as many files, and the recent rate exceeds the baseline by at least
``SUPPLYLINE_FEED_REJECTION_JUMP`` (0.2: twenty percentage points).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from models.catalog import APPLIED_STATUSES, CatalogFile, Supplier
from models.db import as_utc
from supplyline.settings import get_settings

# Files that say nothing about the supplier's data: not finished, our failure, or a resend.
UNCOUNTED_STATUSES = ("processing", "failed", "duplicate")


@dataclass(frozen=True)
class FeedRules:
    """How feed health judges: stale times and the rejection-rate windows."""

    stale_hours: float
    recent_files: int
    baseline_files: int
    rejection_jump: float
    stale_hours_by_supplier: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        stale_hours: float | None = None,
        stale_hours_by_supplier: Mapping[str, float] | None = None,
    ) -> FeedRules:
        """The SUPPLYLINE_FEED_* settings, with a default stale time and per-supplier ones
        given here taking precedence."""
        settings = get_settings()
        return cls(
            stale_hours=stale_hours or settings.feed_stale_hours,
            recent_files=settings.feed_recent_files,
            baseline_files=settings.feed_baseline_files,
            rejection_jump=settings.feed_rejection_jump,
            stale_hours_by_supplier=stale_hours_by_supplier or {},
        )

    def stale_hours_for(self, code: str) -> float:
        return float(self.stale_hours_by_supplier.get(code, self.stale_hours))


@dataclass
class SupplierFeed:
    supplier: str
    name: str
    last_file: str | None
    last_file_status: str | None
    last_file_at: datetime | None
    last_success_at: datetime | None
    hours_since_last_file: float
    stale_hours: float
    stale: bool
    recent_files: int
    recent_rejection_rate: float | None
    baseline_files: int
    baseline_rejection_rate: float | None
    rejection_jump: bool

    def as_dict(self) -> dict[str, object]:
        found = asdict(self)
        for key in ("last_file_at", "last_success_at"):
            moment = found[key]
            found[key] = moment.isoformat() if moment else None
        return found


def file_rejection_rate(status: str, rows_total: int, rows_invalid: int) -> float:
    """A file's share of rejected rows; a file rejected whole, with no rows judged, counts 1."""
    if rows_total > 0:
        return rows_invalid / rows_total
    return 1.0 if status == "rejected" else 0.0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def supplier_feeds(
    session: Session,
    rules: FeedRules,
    *,
    now: datetime,
    suppliers: Iterable[str] | None = None,
) -> list[SupplierFeed]:
    """The feed health of every supplier (or of ``suppliers``), by code."""
    query = sa.select(Supplier.id, Supplier.code, Supplier.name, Supplier.created_at).order_by(
        Supplier.code
    )
    if suppliers is not None:
        query = query.where(Supplier.code.in_(list(suppliers)))  # type: ignore[attr-defined]
    found = session.execute(query).all()
    ids = [row.id for row in found]
    last = _last_files(session, ids)
    successes = _last_successes(session, ids)
    windows = _counted_windows(session, ids, rules.recent_files + rules.baseline_files)

    feeds = []
    for row in found:
        latest = last.get(row.id)
        since = as_utc(latest.received_at if latest else row.created_at)
        hours = (now - since).total_seconds() / 3600  # type: ignore[operator]
        stale_hours = rules.stale_hours_for(row.code)
        rates = windows.get(row.id, [])
        recent, baseline = rates[: rules.recent_files], rates[rules.recent_files :]
        recent_rate, baseline_rate = _mean(recent), _mean(baseline)
        jump = (
            len(recent) == rules.recent_files
            and len(baseline) >= rules.recent_files
            and recent_rate is not None
            and baseline_rate is not None
            and recent_rate - baseline_rate >= rules.rejection_jump
        )
        feeds.append(
            SupplierFeed(
                supplier=row.code,
                name=row.name,
                last_file=latest.original_name if latest else None,
                last_file_status=latest.status if latest else None,
                last_file_at=as_utc(latest.received_at) if latest else None,
                last_success_at=as_utc(successes.get(row.id)),
                hours_since_last_file=round(hours, 2),
                stale_hours=stale_hours,
                stale=hours > stale_hours,
                recent_files=len(recent),
                recent_rejection_rate=_rounded(recent_rate),
                baseline_files=len(baseline),
                baseline_rejection_rate=_rounded(baseline_rate),
                rejection_jump=jump,
            )
        )
    return feeds


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 4)


def _ranked(ids: list[int], *where: sa.ColumnElement[bool]) -> sa.Subquery:
    """The suppliers' files, newest first, numbered per supplier."""
    rank = (
        sa.func.row_number()
        .over(
            partition_by=CatalogFile.supplier_id,
            order_by=(CatalogFile.received_at.desc(), CatalogFile.id.desc()),  # type: ignore[attr-defined,union-attr]
        )
        .label("position")
    )
    return (
        sa.select(
            CatalogFile.supplier_id,
            CatalogFile.original_name,
            CatalogFile.status,
            CatalogFile.received_at,
            CatalogFile.rows_total,
            CatalogFile.rows_invalid,
            rank,
        )
        .where(CatalogFile.supplier_id.in_(ids), *where)  # type: ignore[attr-defined]
        .subquery()
    )


def _last_files(session: Session, ids: list[int]) -> dict[int, sa.Row]:
    ranked = _ranked(ids)
    rows = session.execute(sa.select(ranked).where(ranked.c.position == 1)).all()
    return {row.supplier_id: row for row in rows}


def _last_successes(session: Session, ids: list[int]) -> dict[int, datetime]:
    moment = sa.func.coalesce(CatalogFile.finished_at, CatalogFile.received_at)
    rows = session.execute(
        sa.select(CatalogFile.supplier_id, sa.func.max(moment))
        .where(
            CatalogFile.supplier_id.in_(ids),  # type: ignore[attr-defined]
            CatalogFile.status.in_(APPLIED_STATUSES),  # type: ignore[attr-defined]
        )
        .group_by(CatalogFile.supplier_id)
    ).all()
    return {supplier_id: latest for supplier_id, latest in rows}


def _counted_windows(session: Session, ids: list[int], size: int) -> dict[int, list[float]]:
    """Each supplier's last ``size`` counted files' rejection rates, newest first."""
    ranked = _ranked(ids, CatalogFile.status.not_in(UNCOUNTED_STATUSES))  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(ranked).where(ranked.c.position <= size).order_by(ranked.c.position)
    ).all()
    windows: dict[int, list[float]] = {}
    for row in rows:
        windows.setdefault(row.supplier_id, []).append(
            file_rejection_rate(row.status, row.rows_total, row.rows_invalid)
        )
    return windows
