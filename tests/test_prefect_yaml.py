"""prefect.yaml: every deployment's entrypoint loads as a flow, and parameters fit it."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]


def test_every_entrypoint_loads_and_parameters_match() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        loaded = load_flow_from_entrypoint(f"{ROOT / path}:{name}")
        assert isinstance(loaded, Flow)
        accepted = set(inspect.signature(loaded.fn).parameters)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
        assert deployment["work_pool"]["name"] == "supplyline"
