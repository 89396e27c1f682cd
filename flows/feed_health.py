"""Flow: the daily feed-health check. Raises an event for each supplier whose feed went stale or
whose rejection rate jumped (see tasks.feed_health for the rules), so that automations can tell
someone; publishes the table ``feed-health`` of every supplier checked.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.db import session_scope
from tasks.events import emit_supplier_event
from tasks.feed_health import FeedRules, SupplierFeed, supplier_feeds
from tasks.flow_runs import run_name, tag_current_run


def _run_name() -> str:
    return run_name("feed-health")


@task(name="check-feeds", cache_policy=NO_CACHE)
def check_feeds(rules: FeedRules, suppliers: list[str] | None) -> list[SupplierFeed]:
    with session_scope() as session:
        return supplier_feeds(session, rules, now=datetime.now(UTC), suppliers=suppliers)


@task(name="raise-feed-events", cache_policy=NO_CACHE)
def raise_feed_events(feeds: list[SupplierFeed]) -> int:
    """One ``supplyline.feed.stale`` / ``supplyline.feed.rejection-jump`` event per finding."""
    raised = 0
    for feed in feeds:
        payload = feed.as_dict()
        if feed.stale:
            emit_supplier_event("supplyline.feed.stale", feed.supplier, payload)
            raised += 1
        if feed.rejection_jump:
            emit_supplier_event("supplyline.feed.rejection-jump", feed.supplier, payload)
            raised += 1
    return raised


@flow(name="feed-health", flow_run_name=_run_name)
def feed_health(
    stale_hours: dict[str, float] | None = None,
    suppliers: list[str] | None = None,
    default_stale_hours: float | None = None,
) -> list[dict[str, object]]:
    """Check every supplier's feed (or ``suppliers``').

    ``stale_hours``: per supplier code, how long it may go without sending a file;
    ``default_stale_hours``: for the others (default SUPPLYLINE_FEED_STALE_HOURS).
    """
    rules = FeedRules.from_settings(default_stale_hours, stale_hours)
    feeds = check_feeds(rules, suppliers)
    raised = raise_feed_events(feeds)
    troubled = [f for f in feeds if f.stale or f.rejection_jump]
    tag_current_run(*(f"supplier:{f.supplier}" for f in troubled))
    get_run_logger().info(
        "%d suppliers checked: %d stale, %d with a rejection jump (%d events)",
        len(feeds),
        sum(f.stale for f in feeds),
        sum(f.rejection_jump for f in feeds),
        raised,
    )
    _publish(feeds, troubled)
    return [f.as_dict() for f in feeds]


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.0%}"


def _publish(feeds: list[SupplierFeed], troubled: list[SupplierFeed]) -> None:
    create_table_artifact(
        key="feed-health",
        table=[
            {
                "supplier": f.supplier,
                "last file": f.last_file or "(none)",
                "last file at": f"{f.last_file_at:%Y-%m-%d %H:%M}" if f.last_file_at else "",
                "last success": f"{f.last_success_at:%Y-%m-%d %H:%M}" if f.last_success_at else "",
                "hours since": f.hours_since_last_file,
                "stale after h": f.stale_hours,
                "stale": f.stale,
                "recent rejected": _percent(f.recent_rejection_rate),
                "baseline rejected": _percent(f.baseline_rejection_rate),
                "jump": f.rejection_jump,
            }
            for f in feeds
        ]
        or [{"supplier": "(none)"}],
        description="Every supplier's feed: last file, last success, rejection rates (UTC)",
    )
    if troubled:
        lines = ["### Feeds that need a look", ""]
        for f in troubled:
            if f.stale:
                lines.append(
                    f"- **{f.supplier}**: no file for {f.hours_since_last_file:.0f} h "
                    f"(allowed {f.stale_hours:g} h); last: {f.last_file or 'none ever'}"
                )
            if f.rejection_jump:
                lines.append(
                    f"- **{f.supplier}**: {_percent(f.recent_rejection_rate)} of rows rejected in "
                    f"the last {f.recent_files} files, against "
                    f"{_percent(f.baseline_rejection_rate)} in the {f.baseline_files} before"
                )
        create_markdown_artifact(
            key="feed-health-report", markdown="\n".join(lines), description="feeds in trouble"
        )
