"""The retailer-push commands on SQLite and PostgreSQL: a connector's webhook (its secret kept
in a block, never printed or logged), ``fulfillment push``, the delivery log, redelivery, and
``sandbox retailer`` as a real process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from order_world import make_world
from push_world import events_of, life_of, order_through
from typer.testing import CliRunner

from blocks.retailer_webhook import EVENT_ID_HEADER, SIGNATURE_HEADER, RetailerWebhook, sign_body
from sandbox.openssh import free_port
from sandbox.retailer_webhook import RetailerWebhookSandbox
from supplyline.cli import app
from tasks.retailer_events import event_key

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    """Everything the command wrote (stdout and stderr)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def receiver() -> Iterator[RetailerWebhookSandbox]:
    with RetailerWebhookSandbox() as server:
        yield server


@pytest.fixture
def native(receiver: RetailerWebhookSandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    code = make_world()["native"].code
    monkeypatch.setenv("SHOPCO_WEBHOOK_SECRET", receiver.secret)
    output = run(
        "connector",
        "webhook",
        code,
        "--url",
        receiver.url,
        "--secret-env",
        "SHOPCO_WEBHOOK_SECRET",
    )
    assert f"saved block webhook-{code}" in " ".join(output.split())
    assert receiver.secret not in output
    return code


def test_the_webhook_secret_stays_in_its_block_and_out_of_output_and_logs(
    native: str, receiver: RetailerWebhookSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    block = RetailerWebhook.load(f"webhook-{native}")
    assert block.url == receiver.url
    assert block.signing_secret.get_secret_value() == receiver.secret
    assert receiver.secret not in repr(block)

    shown = json.loads(run("connector", "show", native, "--json"))
    assert shown["webhook"] == {"url": receiver.url, "block": f"webhook-{native}"}
    order_through(native, "O1", ("A-1", 2))
    life_of("O1")
    pushed = run("fulfillment", "push", "--json")
    summary = json.loads(pushed[pushed.index("{") :])
    assert summary["delivered"] == len(events_of("O1")) == len(receiver.events())
    assert receiver.stats.bad_signatures == 0
    log = json.loads(run("fulfillment", "deliveries", "--json"))
    assert {row["status"] for row in log} == {"delivered"}
    assert {row["connector"] for row in log} == {native}
    assert "delivered" in caplog.text  # the push's own log lines were captured...
    everything = (
        pushed
        + json.dumps(shown)
        + json.dumps(log)
        + run("audit", "--json")
        + run("fulfillment", "deliveries")
        + caplog.text
    )
    assert receiver.secret not in everything  # ...and the secret is in none of it


def test_webhook_settings_are_refused_with_the_reason(
    native: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: str) -> str:
        return " ".join(run("connector", "webhook", native, *args, code=3).split())

    assert "environment variable NOT_SET_ANYWHERE is not set" in refused(
        "--url", "https://shop.example/hooks", "--secret-env", "NOT_SET_ANYWHERE"
    )
    monkeypatch.setenv("SHORT_SECRET", "abc")
    assert "too short to sign with" in refused(
        "--url", "https://shop.example/hooks", "--secret-env", "SHORT_SECRET"
    )
    assert "must be an http:// or https:// URL" in refused(
        "--url", "ftp://shop.example/hooks", "--secret-env", "SHOPCO_WEBHOOK_SECRET"
    )
    assert "give --url and --secret-env" in refused("--url", "https://shop.example/hooks")
    assert "abc" not in refused("--url", "ftp://x", "--secret-env", "SHORT_SECRET")

    run("connector", "webhook", native, "--remove")
    assert "webhook" not in json.loads(run("connector", "show", native, "--json"))


def test_failed_deliveries_are_listed_and_sent_again(
    native: str, receiver: RetailerWebhookSandbox
) -> None:
    order_through(native, "O1", ("A-1", 1))
    [created] = events_of("O1")
    receiver.answer(event_key(created), 410)
    output = run("fulfillment", "push", code=1)
    assert "HTTP 410" in output
    [failed] = json.loads(run("fulfillment", "deliveries", "--status", "failed", "--json"))
    assert failed["event_id"] == event_key(created) and failed["last_status_code"] == 410
    assert "not taken now" in failed["last_error"]
    assert "not one of" in run("fulfillment", "deliveries", "--status", "lost", code=3)
    assert "event ids look like evt_42" in run("fulfillment", "redeliver", "nope", code=3)

    receiver.answer_normally()
    assert "1 failed deliveries go out again" in run("fulfillment", "redeliver", event_key(created))
    assert "delivered 1, to retry 0, failed 0" in run("fulfillment", "push")
    assert [e.event_id for e in receiver.events()] == [event_key(created)]
    assert json.loads(run("fulfillment", "deliveries", "--status", "failed", "--json")) == []


def test_sandbox_retailer_runs_a_receiver_that_checks_signatures() -> None:
    port = free_port()
    secret = "a-secret-of-the-retailer-0123456789"
    env = os.environ | {"RETAILER_SANDBOX_SECRET": secret}
    command = [sys.executable, "-m", "supplyline.cli", "sandbox", "retailer", "--port", str(port)]
    command += ["--secret-env", "RETAILER_SANDBOX_SECRET"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/_sandbox/events")
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            body = json.dumps({"id": "evt_7", "type": "po.shipment"}).encode()
            headers = {SIGNATURE_HEADER: sign_body(secret, body), EVENT_ID_HEADER: "evt_7"}
            assert client.post("/webhook", content=body, headers=headers).status_code == 200
            assert client.post("/webhook", content=body, headers=headers).status_code == 200
            wrong = {SIGNATURE_HEADER: sign_body("another-secret", body), EVENT_ID_HEADER: "evt_7"}
            assert client.post("/webhook", content=body, headers=wrong).status_code == 401
            client.post("/_sandbox/down", json={"status": 503})
            assert client.post("/webhook", content=body, headers=headers).status_code == 503
            held = client.get("/_sandbox/events").json()
        assert [e["event_id"] for e in held["events"]] == ["evt_7"]
        assert held["events"][0]["copies"] == 2 and held["stats"]["bad_signatures"] == 1
        assert held["down"] is True
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"{base}/webhook" in output.decode()
    assert secret not in output.decode()
