"""prefect.yaml: every deployment's entrypoint loads as a flow, and parameters fit it."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow, load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]


def test_every_entrypoint_loads_and_parameters_match() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    PrefectYamlModel.model_validate(config)  # what `prefect deploy` reads it as
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        loaded = load_flow_from_entrypoint(f"{ROOT / path}:{name}")
        assert isinstance(loaded, Flow)
        accepted = set(inspect.signature(loaded.fn).parameters)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
        assert deployment["work_pool"]["name"] == "supplyline"


def test_sftp_pickups_are_scheduled_one_run_per_supplier_at_a_time() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    pickups = [
        d for d in config["deployments"] if d["entrypoint"].startswith("flows/sftp_ingest.py")
    ]
    assert pickups
    for deployment in pickups:
        code = deployment["parameters"]["supplier"]
        assert deployment["name"] == f"catalog-sftp-{code}"
        assert f"supplier:{code}" in deployment["tags"]
        assert deployment["concurrency_limit"]["limit"] == 1
        [schedule] = deployment["schedules"]
        assert schedule["timezone"] and ("interval" in schedule or "cron" in schedule)


def test_order_sync_runs_every_few_minutes() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [sync] = [d for d in config["deployments"] if d["name"] == "order-sync"]
    [schedule] = sync["schedules"]
    assert schedule["interval"] <= 600 and schedule["timezone"]
    assert sync["concurrency_limit"]["limit"] == 1


def test_fulfillment_sync_is_scheduled_one_run_at_a_time() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [sync] = [d for d in config["deployments"] if d["name"] == "fulfillment-sync"]
    assert sync["entrypoint"] == "flows/fulfillment_sync.py:fulfillment_sync"
    [schedule] = sync["schedules"]
    assert schedule["interval"] <= 900 and schedule["timezone"]
    assert sync["concurrency_limit"]["limit"] == 1


def test_retailer_push_runs_every_minute_one_at_a_time() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [push] = [d for d in config["deployments"] if d["name"] == "retailer-push"]
    assert push["entrypoint"] == "flows/retailer_push.py:retailer_push"
    [schedule] = push["schedules"]
    assert schedule["interval"] <= 300 and schedule["timezone"]
    assert push["concurrency_limit"]["limit"] == 1
