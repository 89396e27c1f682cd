"""The orders commands on SQLite and PostgreSQL, against the supplier sandbox over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from order_world import make_world, order
from typer.testing import CliRunner

from blocks.supplier_api import SupplierApi
from models.db import session_scope
from sandbox.supplier_api import SupplierSandbox
from supplyline.cli import app
from tasks.connections import ordering_of, supplier_by_code

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    """What the command printed: stdout when it succeeds (Prefect logs to stderr), else all."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else " ".join(result.output.split())


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SupplierSandbox]:
    with SupplierSandbox(database=tmp_path / "supplier.db") as server:
        yield server


@pytest.fixture
def connected(sandbox: SupplierSandbox, monkeypatch: pytest.MonkeyPatch) -> SupplierSandbox:
    make_world(auto_sync=False, payment="credit_card", funds=None)
    monkeypatch.setenv("ACME_API_SECRET", sandbox.client_secret)
    output = run(
        "supplier",
        "orders",
        "acme",
        "--api-url",
        sandbox.url,
        "--client-id",
        sandbox.client_id,
        "--secret-env",
        "ACME_API_SECRET",
    )
    assert "saved block supplier-api-acme" in output
    assert sandbox.client_secret not in output
    return sandbox


def test_supplier_orders_saves_the_block_and_the_connector(connected: SupplierSandbox) -> None:
    block = SupplierApi.load("supplier-api-acme")
    assert block.base_url == connected.url
    assert block.client_secret.get_secret_value() == connected.client_secret
    assert connected.client_secret not in repr(block)
    with session_scope() as session:
        rules = ordering_of(session, supplier_by_code(session, "acme"))
    assert (rules.order_connector_type, rules.order_connector_settings) == (
        "rest_api",
        {"block": "supplier-api-acme"},
    )


def test_submit_purchase_list_show(connected: SupplierSandbox) -> None:
    order("O1", ("A-1", 2))
    summary = json.loads(run("orders", "sync", "--json"))
    assert (summary["pos_created"], summary["pos_submitted"]) == (1, 0)
    listed = json.loads(run("orders", "list", "--json"))
    assert [(p["po_number"], p["state"]) for p in listed] == [("PO-ACME-00000001", "awaiting_sync")]
    assert "auto sync is off" in listed[0]["reason"]

    submitted = json.loads(run("orders", "submit", "PO-ACME-00000001", "--json"))
    assert (submitted["pos_submitted"], submitted["pos_awaiting_purchase"]) == (1, 1)
    assert len(connected.orders()) == 1
    refused = run("orders", "submit", "PO-ACME-00000001", code=3)
    assert "only a PO awaiting sync can be sent" in refused

    purchased = json.loads(
        run("orders", "purchase", "PO-ACME-00000001", "--actor", "ann", "--json")
    )
    assert (purchased["state"], purchased["purchase"]) == ("submitted", "manual")
    shown = json.loads(run("orders", "show", "PO-ACME-00000001", "--json"))
    history = shown["purchase_orders"][0]["history"]
    assert [(e["from"], e["to"]) for e in history] == [
        (None, "awaiting_sync"),
        ("awaiting_sync", "awaiting_purchase"),
        ("awaiting_purchase", "submitted"),
    ]
    assert history[-1]["actor"] == "ann"
    assert "payment method credit_card always needs a person" in history[1]["reason"]
    assert (
        json.loads(run("orders", "list", "--state", "submitted", "--json"))[0]["supplier"] == "acme"
    )
    assert json.loads(run("orders", "list", "--state", "rejected", "--json")) == []
    assert "not one of" in run("orders", "list", "--state", "lost", code=3)
    text = run("orders", "show", "shopco:O1")
    assert "PO-ACME-00000001" in text and "awaiting_purchase -> submitted" in text


def test_cancel_and_retry(connected: SupplierSandbox) -> None:
    order("O1", ("A-1", 1))
    order("O2", ("A-1", 1))
    run("orders", "sync", "--json")
    cancelled = json.loads(run("orders", "cancel", "shopco:O1", "--json"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["purchase_orders"][0]["state"] == "cancelled"
    assert "only a failed PO can be retried" in run("orders", "retry", "PO-ACME-00000002", code=3)
    assert "no PO" in run("orders", "purchase", "PO-NOPE", code=3)
    assert "no order" in run("orders", "cancel", "shopco:NOPE", code=3)


def test_a_retailer_can_make_its_orders_all_or_nothing(connected: SupplierSandbox) -> None:
    assert "orders are all or nothing" in " ".join(
        run("retailer", "settings", "shopco", "--all-or-nothing").split()
    )
    order("O1", ("A-1", 1), ("NOPE", 1))
    order("O2", ("A-1", 1), ("NOPE", 1), all_or_nothing=False)  # the order's own word wins
    summary = json.loads(run("orders", "sync", "--json"))
    assert (summary["orders_rejected"], summary["orders_partially_routed"]) == (1, 1)
    shown = json.loads(run("orders", "show", "shopco:O1", "--json"))
    assert shown["status"] == "rejected" and shown["all_or_nothing"] is True
    assert "all-or-nothing" in shown["lines"][0]["reason"]
    run("retailer", "settings", "shopco", "--partial")
    order("O3", ("A-1", 1), ("NOPE", 1))
    assert json.loads(run("orders", "sync", "--json"))["orders_partially_routed"] == 1
