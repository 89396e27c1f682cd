"""prefect.yaml: every deployment's entrypoint loads as a flow, parameters fit it, every flow is
deployed, schedules have time zones, and the file is what `prefect deploy` reads."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect._internal.schemas.validators import validate_values_conform_to_schema
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def _deployments() -> list[dict[str, Any]]:
    return _config()["deployments"]


def test_the_file_validates_as_prefect_reads_it() -> None:
    config = _config()
    model = PrefectYamlModel.model_validate(config)
    assert len(model.deployments) == len(config["deployments"]) > 0
    names = [d["name"] for d in config["deployments"]]
    assert len(names) == len(set(names)), "deployment names are unique"
    [pull] = config["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == (
        "{{ $SUPPLYLINE_PROJECT_DIR }}"
    )


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["name"])
def test_every_entrypoint_loads_and_parameters_match(deployment: dict[str, Any]) -> None:
    path, name = deployment["entrypoint"].split(":")
    loaded = load_flow_from_entrypoint(f"{ROOT / path}:{name}")
    assert isinstance(loaded, Flow)
    parameters = deployment.get("parameters", {})
    assert set(parameters) <= set(inspect.signature(loaded.fn).parameters)
    # What the server checks when the deployment is applied (`prefect deploy`).
    validate_values_conform_to_schema(parameters, parameter_schema(loaded).model_dump(), True)
    if deployment.get("schedules"):
        # A scheduled run gets exactly these parameters: they must be a valid call.
        loaded.validate_parameters(parameters)
    assert deployment["work_pool"]["name"] == "supplyline"
    assert deployment["tags"], "every deployment is tagged"


def test_every_flow_is_deployed() -> None:
    deployed = {d["entrypoint"] for d in _deployments()}
    flows = set()
    for module_path in sorted((ROOT / "flows").glob("*.py")):
        module = importlib.import_module(f"flows.{module_path.stem}")
        for attribute, value in vars(module).items():
            if isinstance(value, Flow) and value.fn.__module__ == module.__name__:
                flows.add(f"flows/{module_path.name}:{attribute}")
    assert flows and flows <= deployed, f"not deployed: {sorted(flows - deployed)}"


def test_schedules_have_time_zones() -> None:
    scheduled = [d for d in _deployments() if d.get("schedules")]
    assert {d["entrypoint"].split(":")[1] for d in scheduled} >= {
        "catalog_sftp_ingest",
        "order_sync",
        "order_sftp_intake",
        "feed_health",
    }
    for deployment in scheduled:
        for schedule in deployment["schedules"]:
            assert schedule["timezone"], deployment["name"]
            assert "interval" in schedule or "cron" in schedule


def test_sftp_pickups_are_scheduled_one_run_per_supplier_at_a_time() -> None:
    pickups = [d for d in _deployments() if d["entrypoint"].startswith("flows/sftp_ingest.py")]
    assert pickups
    for deployment in pickups:
        code = deployment["parameters"]["supplier"]
        assert deployment["name"] == f"catalog-sftp-{code}"
        assert f"supplier:{code}" in deployment["tags"]
        assert deployment["concurrency_limit"]["limit"] == 1


def test_order_pickups_are_tagged_by_retailer_one_run_at_a_time() -> None:
    pickups = [d for d in _deployments() if d["entrypoint"].endswith(":order_sftp_intake")]
    assert pickups
    for deployment in pickups:
        assert deployment["name"] == f"order-sftp-{deployment['parameters']['connector']}"
        assert any(t.startswith("retailer:") for t in deployment["tags"])
        assert deployment["concurrency_limit"]["limit"] == 1


def test_order_sync_runs_every_few_minutes_one_at_a_time() -> None:
    [sync] = [d for d in _deployments() if d["name"] == "order-sync"]
    [schedule] = sync["schedules"]
    assert schedule["interval"] <= 600 and schedule["timezone"]
    assert sync["concurrency_limit"]["limit"] == 1


def test_fulfillment_sync_is_scheduled_one_run_at_a_time() -> None:
    [sync] = [d for d in _deployments() if d["name"] == "fulfillment-sync"]
    assert sync["entrypoint"] == "flows/fulfillment_sync.py:fulfillment_sync"
    [schedule] = sync["schedules"]
    assert schedule["interval"] <= 900 and schedule["timezone"]
    assert sync["concurrency_limit"]["limit"] == 1


def test_retailer_push_runs_every_minute_one_at_a_time() -> None:
    [push] = [d for d in _deployments() if d["name"] == "retailer-push"]
    assert push["entrypoint"] == "flows/retailer_push.py:retailer_push"
    [schedule] = push["schedules"]
    assert schedule["interval"] <= 300 and schedule["timezone"]
    assert push["concurrency_limit"]["limit"] == 1


def test_feed_health_runs_daily() -> None:
    [health] = [d for d in _deployments() if d["name"] == "feed-health"]
    [schedule] = health["schedules"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("*", "*", "*") and hour.isdigit() and minute.isdigit()
