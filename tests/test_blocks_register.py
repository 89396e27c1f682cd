"""`prefect block register -m blocks` registers every Supplyline block type on a server."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

import blocks

ROOT = Path(__file__).resolve().parents[1]


def _defined_block_types() -> set[type[Block]]:
    found = set()
    for path in (ROOT / "blocks").glob("*.py"):
        module = importlib.import_module(f"blocks.{path.stem}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Block) and value.__module__ == module.__name__:
                found.add(value)
    return found


def test_the_package_exports_every_block_type() -> None:
    defined = _defined_block_types()
    assert defined, "blocks/ defines block types"
    exported = {getattr(blocks, name) for name in blocks.__all__}
    assert defined <= exported, f"not exported: {defined - exported}"


@pytest.mark.usefixtures("prefect_api")
def test_register_command_puts_them_on_the_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    done = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "block", "register", "-m", "blocks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        for block_type in _defined_block_types():
            assert block_type.get_block_type_name() in done.stdout
            registered = client.read_block_type_by_slug(block_type.get_block_type_slug())
            assert registered.name == block_type.get_block_type_name()
            schema = client.get_most_recent_block_schema_for_block_type(registered.id)
            assert schema is not None
            assert schema.checksum == block_type._calculate_schema_checksum()
