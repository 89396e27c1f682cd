"""The retailer, connection, credentials, connector, lookup and audit commands, through typer's
CliRunner against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supplyline.cli import app

pytestmark = pytest.mark.usefixtures("database")

runner = CliRunner()
TERMS = "https://acme.example/terms"


def run(*args: str, code: int = 0, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def as_json(*args: str) -> object:
    return json.loads(run(*args, "--json"))


@pytest.fixture
def shopco(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPLYLINE_ACTOR", "ops-bot")
    from supplyline.settings import get_settings

    get_settings.cache_clear()
    run("supplier", "add", "acme", "--name", "ACME Tools")
    run("retailer", "add", "shopco", "--name", "Shop Co", "--registration-number", "C-1")


@pytest.mark.usefixtures("shopco")
def test_connect_review_approve_settings_and_disconnect() -> None:
    shown = as_json("supplier", "settings", "acme", "--ordering", "review", "--terms-url", TERMS)
    assert (shown["ordering_mode"], shown["terms_url"]) == ("review", TERMS)
    assert "--accept-terms" in run("connect", "shopco", "acme", code=3)
    pending = as_json("connect", "shopco", "acme", "--accept-terms", TERMS, "--account", "SH-9")
    assert (pending["status"], pending["linked_account"]) == ("pending", "SH-9")
    assert pending["terms_url_accepted"] == TERMS
    run("connect", "shopco", "acme", "--accept-terms", TERMS, code=4)

    run("connection", "approve", "shopco/acme", "--actor", "alice")
    changed = as_json(
        "connection", "settings", str(pending["id"]), "--auto-sync", "--auto-purchase",
        "--payment", "line_of_credit", "--funds", "1500",
    )  # fmt: skip
    assert changed["status"] == "active"
    assert (changed["auto_sync"], changed["auto_purchase"]) == (True, True)
    assert (changed["payment_method"], changed["available_funds"]) == ("line_of_credit", "1500.00")
    run("connection", "settings", "1", "--payment", "cheque", code=3)
    assert as_json("connection", "list", "--retailer", "shopco")[0]["can_send_new_po"] is True

    refused = run("connection", "disconnect", "1", input="disconnect\n", code=3)
    assert "Type DISCONNECT to confirm" in refused and "not disconnected" in refused
    run("connection", "disconnect", "1", "--confirm", "yes", code=3)
    assert as_json("connection", "show", "1")["status"] == "active"
    run("connection", "disconnect", "1", input="DISCONNECT\n")
    shown = as_json("connection", "show", "shopco/acme")
    assert (shown["status"], shown["can_send_new_po"]) == ("disconnected", False)
    assert "it is disconnected, not pending" in run("connection", "approve", "1", code=4)

    again = as_json("connect", "shopco", "acme", "--accept-terms", TERMS)
    assert (again["id"], again["status"]) == (2, "pending")
    run("connection", "reject", "2")
    run("connection", "disconnect", "2", "--confirm", "DISCONNECT", code=4)

    events = as_json("audit", "--limit", "20")
    actions = [(e["actor"], e["action"]) for e in reversed(events)]
    assert ("alice", "connection.approve") in actions
    assert ("ops-bot", "connection.settings") in actions
    assert actions[-1] == ("ops-bot", "connection.reject")
    assert "connection.disconnect" in run("audit", "--entity", "connection")


@pytest.mark.usefixtures("shopco")
def test_instant_ordering_and_retailer_views() -> None:
    run("supplier", "settings", "acme", "--ordering", "instant")
    assert as_json("connect", "shopco", "acme")["status"] == "active"
    retailers = as_json("retailer", "list")
    assert [(r["code"], r["registration_number"]) for r in retailers] == [("shopco", "C-1")]
    shown = as_json("retailer", "show", "shopco")
    assert [c["supplier"] for c in shown["connections"]] == ["acme"]
    assert "no retailer 'nobody'" in run("retailer", "show", "nobody", code=3)
    assert "already exists" in run("retailer", "add", "shopco", "--name", "Again", code=3)
    assert "publishes no terms" not in run("supplier", "settings", "acme")


@pytest.mark.usefixtures("shopco")
def test_a_secret_is_printed_once_and_never_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = []

    def capture(*args: str, code: int = 0) -> str:
        outputs.append(run(*args, code=code))
        return outputs[-1]

    created = capture("credentials", "create", "--retailer", "shopco", "--name", "erp")
    secret = next(w for w in created.split() if w.startswith("sls_"))
    client_id = next(w for w in created.split() if w.startswith("slc_"))
    rotated = json.loads(capture("credentials", "rotate", client_id, "--grace", "1h", "--json"))
    connector = json.loads(
        capture("connector", "add", "--retailer", "shopco", "--type", "native_api", "--json")
    )
    capture("credentials", "list")
    capture("credentials", "list", "--json")
    capture("connector", "show", connector["code"], "--json")
    capture("connector", "list")
    capture("retailer", "show", "shopco", "--json")
    capture("audit", "--json")
    capture("audit")
    capture("credentials", "revoke", client_id)
    capture("credentials", "rotate", client_id, code=3)

    everything = "\n".join(outputs) + caplog.text
    for issued in (secret, rotated["secret"], connector["api_secret"]):
        assert everything.count(issued) == 1, "a secret was printed or logged more than once"
    assert rotated["client_id"] == client_id
    assert connector["endpoints"]["place_order"]["url"].endswith(
        f"/v1/native/{connector['code']}/orders"
    )
    listed = json.loads(outputs[4])
    assert {c["status"] for c in listed} == {"active"}
    assert [c["valid_secrets"] for c in listed] == [2, 1]


@pytest.mark.usefixtures("shopco")
def test_credentials_and_connectors_are_checked() -> None:
    assert "one owner" in run("credentials", "create", code=3)
    assert "one owner" in run(
        "credentials", "create", "--retailer", "shopco", "--supplier", "acme", code=3
    )
    assert "not a duration" in run("credentials", "rotate", "slc_x", "--grace", "soon", code=3)
    assert "no credential" in run("credentials", "revoke", "slc_missing", code=3)
    assert "sftp" in run("connector", "add", "--retailer", "shopco", "--type", "fax", code=3)
    sftp = as_json("connector", "add", "--retailer", "shopco", "--type", "sftp")
    assert sftp["orders_folder"].endswith("/orders") and "api_secret" not in sftp
    run("connector", "remove", sftp["code"])
    assert as_json("connector", "list") == []
    assert as_json("connector", "list", "--removed")[0]["status"] == "removed"


@pytest.mark.usefixtures("shopco")
def test_lookup_commands(tmp_path: Path) -> None:
    run("lookup", "set", "shopco", "sku", "R-1", "ACME-1")
    run("lookup", "set", "shopco", "shipping_method", "--default", "UPS_GND")
    run("lookup", "set", "shopco", "sku", "R-1", "ACME-1-X", "--supplier", "acme")
    source = tmp_path / "in.csv"
    source.write_text("key,value\nR-2,ACME-2\nR-1,ACME-1\n", encoding="utf-8")
    imported = run("lookup", "import", "shopco", "sku", str(source))
    assert "1 added, 0 changed, 1 unchanged" in imported
    tables = as_json("lookup", "list", "shopco")
    assert tables == [
        {"table": "shipping_method", "supplier": None, "default": "UPS_GND", "entries": {}},
        {"table": "sku", "supplier": None, "default": None,
         "entries": {"R-1": "ACME-1", "R-2": "ACME-2"}},
        {"table": "sku", "supplier": "acme", "default": None, "entries": {"R-1": "ACME-1-X"}},
    ]  # fmt: skip
    out = tmp_path / "out.csv"
    run("lookup", "export", "shopco", "sku", str(out))
    assert out.read_text(encoding="utf-8").splitlines() == ["key,value", "R-1,ACME-1", "R-2,ACME-2"]
    run("lookup", "set", "shopco", "sku", "R-2", "--remove")
    assert as_json("lookup", "list", "shopco", "sku")[0]["entries"] == {"R-1": "ACME-1"}
    assert "give KEY VALUE" in run("lookup", "set", "shopco", "sku", "R-3", code=3)
    assert "has no lookup 'colour'" in run("lookup", "export", "shopco", "colour", str(out), code=3)
