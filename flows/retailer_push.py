"""Flow ``retailer-push``: PO events out to retailers (webhooks, SFTP status files).

Plans the deliveries of every event not pushed yet, then runs one ``push-events`` task per
connector with deliveries due (see tasks.retailer_push). Fulfillment sync calls it after it has
recorded what suppliers reported; it also runs on its own, so that retries come on time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.db import session_scope
from tasks.retailer_push import (
    PlanOutcome,
    PushOutcome,
    connectors_with_due_deliveries,
    plan_pushes,
    push_events,
)


def _run_name() -> str:
    return f"retailer-push-{datetime.now(UTC):%Y-%m-%dT%H:%M}"


@task(name="due-connectors", cache_policy=NO_CACHE)
def due_connectors() -> list[str]:
    with session_scope() as session:
        return connectors_with_due_deliveries(session)


@flow(name="retailer-push", flow_run_name=_run_name)
def retailer_push(batch_size: int | None = None) -> dict[str, Any]:
    """Push every PO event not pushed yet to its retailer's connector; retry what is due."""
    planned = plan_pushes(batch_size)
    futures = {code: push_events.submit(code, batch_size) for code in due_connectors()}
    outcomes = []
    for code, future in futures.items():
        try:
            outcomes.append(future.result())
        except Exception as exc:  # one connector's trouble never stops the others'
            get_run_logger().error("%s: the push failed: %s", code, exc)
            outcomes.append(PushOutcome(code, broken=True, problems=[f"{code}: {exc}"]))
    summary = push_summary(planned, outcomes)
    if planned.events or any(o.delivered or o.retrying or o.failed or o.broken for o in outcomes):
        _publish(summary, outcomes)  # a run that found nothing to do adds no version
    return summary


def push_summary(planned: PlanOutcome, outcomes: list[PushOutcome]) -> dict[str, Any]:
    return {
        "events_planned": planned.events,
        "deliveries_planned": planned.deliveries,
        "events_without_destination": planned.without_destination,
        "delivered": sum(o.delivered for o in outcomes),
        "retrying": sum(o.retrying for o in outcomes),
        "failed": sum(o.failed for o in outcomes),
        "pending": sum(o.pending for o in outcomes),
        "connectors_paused": [o.connector for o in outcomes if o.paused],
        "connectors_broken": [o.connector for o in outcomes if o.broken],
        "connectors": {
            o.connector: {
                "delivered": o.delivered,
                "retrying": o.retrying,
                "failed": o.failed,
                "pending": o.pending,
                "paused": o.paused,
                "broken": o.broken,
            }
            for o in outcomes
        },
        "problems": [p for o in outcomes for p in o.problems][:50],
    }


def _publish(summary: dict[str, Any], outcomes: list[PushOutcome]) -> None:
    create_table_artifact(
        key="retailer-push",
        table=[
            {
                "connector": o.connector,
                "delivered": o.delivered,
                "to retry": o.retrying,
                "failed": o.failed,
                "still pending": o.pending,
            }
            for o in outcomes
        ]
        or [{"connector": "(none due)", "delivered": 0}],
        description="PO events delivered to retailers in this run, per connector",
    )
    lines = [
        "### Retailer push",
        "",
        "| events planned | deliveries planned | no destination | delivered | to retry "
        "| failed | still pending |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['events_planned']} | {summary['deliveries_planned']} "
        f"| {summary['events_without_destination']} | {summary['delivered']} "
        f"| {summary['retrying']} | {summary['failed']} | {summary['pending']} |",
    ]
    if summary["problems"]:
        lines += ["", "**Problems**", ""] + [f"- {p}" for p in summary["problems"]]
    create_markdown_artifact(
        key="retailer-push-report", markdown="\n".join(lines), description="retailer push run"
    )
