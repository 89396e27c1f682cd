"""Credentials, connectors and lookups on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from models.db import get_engine, session_scope
from models.relationships import CredentialSecret
from supplyline.errors import RelationshipError
from tasks.audit import audit_trail
from tasks.connectors import add_connector, describe_connector, get_connector, remove_connector
from tasks.credentials import (
    InvalidCredentials,
    Principal,
    create_credential,
    list_credentials,
    parse_duration,
    revoke_credential,
    rotate_credential,
    verify_credentials,
)
from tasks.lookups import (
    MissingLookupValue,
    export_lookup_csv,
    import_lookup_csv,
    list_lookups,
    remove_lookup_value,
    resolve_lookup,
    set_lookup_default,
    set_lookup_value,
)
from tasks.retailers import add_retailer
from tasks.suppliers import add_supplier

ACTOR = "tester"


@pytest.fixture(autouse=True)
def parties(database: str) -> None:
    with session_scope() as session:
        add_supplier(session, "acme", "ACME Tools")
        add_supplier(session, "globex", "Globex")
        add_retailer(session, "shopco", "Shop Co", actor=ACTOR)


def issue(**owner: object):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        return create_credential(session, actor=ACTOR, **owner)  # type: ignore[arg-type]


def everything_stored() -> str:
    """Every row of every table, as text: what a database dump would reveal."""
    with get_engine().connect() as connection:
        return "\n".join(
            repr(row)
            for table in SQLModel.metadata.sorted_tables
            for row in connection.execute(sa.select(table))
        )


# --- credentials ----------------------------------------------------------------------------


def test_a_credential_verifies_and_names_its_owner(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issued = issue(retailer_code="shopco", label="erp")
    assert issued.secret.startswith("sls_") and len(issued.secret) > 40
    assert issued.credential.client_id.startswith("slc_")
    assert verify_credentials(issued.credential.client_id, issued.secret) == Principal(
        kind="retailer", client_id=issued.credential.client_id, retailer="shopco"
    )
    supplier = issue(supplier_code="acme")
    assert verify_credentials(supplier.credential.client_id, supplier.secret).supplier == "acme"

    stored = everything_stored()
    assert issued.secret not in stored and supplier.secret not in stored
    assert "***" in repr(issued) and issued.secret not in repr(issued)
    with session_scope() as session:
        hashes = [s.secret_hash for s in session.exec(sa.select(CredentialSecret)).scalars()]
        events = json.dumps([e.model_dump(mode="json") for e in audit_trail(session)])
        listed = json.dumps([v.as_dict() for v in list_credentials(session)])
    assert len(hashes) == 2
    for text in (events, listed, caplog.text):
        assert issued.secret not in text
        assert not any(h in text for h in hashes), "a hash reached the audit, a listing or a log"
    with session_scope() as session:
        assert list_credentials(session)[0].as_dict()["last_used_at"] is not None


def test_a_wrong_unknown_or_revoked_secret_is_refused() -> None:
    issued = issue(retailer_code="shopco")
    client_id = issued.credential.client_id
    for wrong_id, wrong_secret in (
        (client_id, issued.secret + "x"),
        (client_id, ""),
        ("slc_unknown", issued.secret),
    ):
        with pytest.raises(InvalidCredentials, match="wrong, revoked or expired"):
            verify_credentials(wrong_id, wrong_secret)
    with session_scope() as session:
        revoke_credential(session, client_id, actor=ACTOR)
    with pytest.raises(InvalidCredentials):
        verify_credentials(client_id, issued.secret)
    with pytest.raises(RelationshipError, match="revoked"), session_scope() as session:
        rotate_credential(session, client_id, grace=timedelta(hours=1), actor=ACTOR)


def test_a_rotated_secret_works_through_its_grace_and_not_after() -> None:
    old = issue(supplier_code="acme")
    client_id = old.credential.client_id
    with session_scope() as session:
        new = rotate_credential(session, client_id, grace=parse_duration("24h"), actor=ACTOR)
    assert new.credential.client_id == client_id and new.secret != old.secret
    assert verify_credentials(client_id, old.secret).supplier == "acme"  # within the grace
    assert verify_credentials(client_id, new.secret).supplier == "acme"
    with session_scope() as session:
        view = list_credentials(session)[0].as_dict()
    assert view["valid_secrets"] == 2 and view["previous_valid_until"]

    with session_scope() as session:  # the grace period runs out
        session.execute(
            sa.update(CredentialSecret)
            .where(CredentialSecret.expires_at.is_not(None))
            .values(expires_at=sa.func.current_timestamp())
        )
    with pytest.raises(InvalidCredentials):
        verify_credentials(client_id, old.secret)
    assert verify_credentials(client_id, new.secret).supplier == "acme"

    with session_scope() as session:  # no grace: the old secret stops at once
        newest = rotate_credential(session, client_id, grace=parse_duration("0s"), actor=ACTOR)
    with pytest.raises(InvalidCredentials):
        verify_credentials(client_id, new.secret)
    assert verify_credentials(client_id, newest.secret).client_id == client_id


def test_durations_and_owners_are_checked() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("7d") == timedelta(days=7)
    for bad in ("24", "1w", "-1h", "31d"):
        with pytest.raises(RelationshipError):
            parse_duration(bad)
    with pytest.raises(RelationshipError, match="one owner"):
        issue()
    with pytest.raises(RelationshipError, match="one owner"):
        issue(retailer_code="shopco", supplier_code="acme")
    with pytest.raises(RelationshipError, match="no retailer 'nobody'"):
        issue(retailer_code="nobody")


# --- connectors -----------------------------------------------------------------------------


def test_an_api_connector_gets_a_key_a_secret_and_endpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from supplyline.settings import get_settings

    monkeypatch.setenv("SUPPLYLINE_API_BASE_URL", "https://hub.example/")
    get_settings.cache_clear()
    with session_scope() as session:
        native = add_connector(session, "shopco", "native_api", actor=ACTOR)
        siteflow = add_connector(session, "shopco", "siteflow_api", actor=ACTOR)
        second = add_connector(session, "shopco", "native_api", actor=ACTOR)
        shown = describe_connector(session, native.connector)
        shown_siteflow = describe_connector(session, siteflow.connector)
    assert (native.connector.code, second.connector.code) == ("shopco-native", "shopco-native-2")
    assert native.credential is not None
    api_key = native.credential.credential.client_id
    assert shown["api_keys"] == [api_key]
    assert shown["endpoints"] == {
        "place_order": {
            "method": "POST",
            "url": "https://hub.example/v1/native/shopco-native/orders",
        },
        "cancel_order": {
            "method": "POST",
            "url": "https://hub.example/v1/native/shopco-native/orders/{order_id}/cancel",
        },
        "order_status": {
            "method": "GET",
            "url": "https://hub.example/v1/native/shopco-native/orders/{order_id}",
        },
    }
    assert shown_siteflow["endpoints"]["place_order"]["url"] == (
        "https://hub.example/v1/siteflow/shopco-siteflow/orders"
    )
    assert native.credential.secret not in json.dumps(shown)
    principal = verify_credentials(api_key, native.credential.secret)
    assert (principal.kind, principal.connector, principal.retailer) == (
        "connector",
        "shopco-native",
        "shopco",
    )

    with session_scope() as session:
        remove_connector(session, "shopco-native", actor=ACTOR)
    with pytest.raises(InvalidCredentials):
        verify_credentials(api_key, native.credential.secret)
    with pytest.raises(RelationshipError, match="no connector"), session_scope() as session:
        get_connector(session, "shopco-native")


def test_an_sftp_connector_names_its_folders() -> None:
    with session_scope() as session:
        added = add_connector(session, "shopco", "sftp", actor=ACTOR)
        custom = add_connector(
            session, "shopco", "sftp", code="shop-files", orders_folder="/in", actor=ACTOR
        )
        shown = describe_connector(session, added.connector)
    assert added.credential is None
    assert shown["orders_folder"] == "/retailers/shopco/shopco-sftp/orders"
    assert shown["status_folder"] == "/retailers/shopco/shopco-sftp/status"
    assert shown["endpoints"] == {}
    assert custom.connector.settings["orders_folder"] == "/in"
    unknown_type = pytest.raises(RelationshipError, match="native_api, siteflow_api, sftp")
    with unknown_type, session_scope() as session:
        add_connector(session, "shopco", "fax", actor=ACTOR)
    with pytest.raises(RelationshipError, match="already exists"), session_scope() as session:
        add_connector(session, "shopco", "sftp", code="shop-files", actor=ACTOR)


# --- lookups --------------------------------------------------------------------------------


def lookup(table: str, key: str, supplier: str | None = None) -> str:
    with session_scope() as session:
        return resolve_lookup(session, "shopco", table, key, supplier_code=supplier)


def test_lookups_map_keys_with_supplier_tables_first_then_defaults() -> None:
    with session_scope() as session:
        set_lookup_value(session, "shopco", "sku", "R-1", "ACME-1", actor=ACTOR)
        set_lookup_value(session, "shopco", "sku", "R-2", "GEN-2", actor=ACTOR)
        set_lookup_value(
            session, "shopco", "sku", "R-1", "GLX-1", supplier_code="globex", actor=ACTOR
        )
        set_lookup_value(session, "shopco", "shipping_method", "Ground", "UPS_GND", actor=ACTOR)
        set_lookup_default(session, "shopco", "shipping_method", "USPS_PRI", actor=ACTOR)
    assert lookup("sku", "R-1") == "ACME-1"
    assert lookup("sku", " R-1 ") == "ACME-1"
    assert lookup("sku", "R-1", "globex") == "GLX-1"
    assert lookup("sku", "R-2", "globex") == "GEN-2", "the retailer's table covers the supplier"
    assert lookup("shipping_method", "Ground") == "UPS_GND"
    assert lookup("shipping_method", "Next day") == "USPS_PRI"

    with pytest.raises(MissingLookupValue) as missing:
        lookup("sku", "R-404", "globex")
    message = str(missing.value)
    assert "'sku'" in message and "'R-404'" in message and "no default" in message
    assert "supplyline lookup set shopco sku 'R-404' VALUE --supplier globex" in message
    assert (missing.value.table, missing.value.key) == ("sku", "R-404")
    with pytest.raises(MissingLookupValue, match="'colour'"):
        lookup("colour", "red")

    with session_scope() as session:
        set_lookup_value(session, "shopco", "sku", "R-2", "GEN-2b", actor="ops")
        remove_lookup_value(session, "shopco", "sku", "R-1", supplier_code="globex", actor="ops")
        events = audit_trail(session, limit=2, entity_type="lookup")
        views = list_lookups(session, "shopco", table_name="sku")
    assert lookup("sku", "R-1", "globex") == "ACME-1"
    assert events[0].action == "lookup.remove" and events[0].before["key"] == "R-1"
    assert (events[1].before["value"], events[1].after["value"]) == ("GEN-2", "GEN-2b")
    assert [v.as_dict()["entries"] for v in views] == [{"R-1": "ACME-1", "R-2": "GEN-2b"}, {}]


def test_lookup_csv_import_and_export_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "skus.csv"
    source.write_text("\ufeffKey,Value\nR-1,ACME-1\nR-2,ACME-2\n\n", encoding="utf-8")
    with session_scope() as session:
        set_lookup_value(session, "shopco", "sku", "R-2", "OLD", actor=ACTOR)
        counts = import_lookup_csv(session, "shopco", "sku", source, actor=ACTOR)
    assert (counts.added, counts.changed, counts.unchanged) == (1, 1, 0)
    exported = tmp_path / "out.csv"
    with session_scope() as session:
        assert export_lookup_csv(session, "shopco", "sku", exported) == 2
        again = import_lookup_csv(session, "shopco", "sku", exported, actor=ACTOR)
    assert exported.read_text(encoding="utf-8").splitlines() == [
        "key,value",
        "R-1,ACME-1",
        "R-2,ACME-2",
    ]
    assert (again.added, again.changed, again.unchanged) == (0, 0, 2)


def test_a_bad_lookup_file_imports_nothing_and_says_which_rows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("key,value\nR-1,A\nR-1,B\n,C\nR-3\n", encoding="utf-8")
    with pytest.raises(RelationshipError) as error, session_scope() as session:
        import_lookup_csv(session, "shopco", "sku", bad, actor=ACTOR)
    message = str(error.value)
    assert "nothing imported" in message
    assert "row 3: key 'R-1' appears twice" in message
    assert "row 4: the key is empty" in message
    assert "row 5: 1 columns" in message
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("R-1,A\n", encoding="utf-8")
    with pytest.raises(RelationshipError, match="header key,value"), session_scope() as session:
        import_lookup_csv(session, "shopco", "sku", headerless, actor=ACTOR)
    with pytest.raises(RelationshipError, match="not valid"), session_scope() as session:
        set_lookup_value(session, "shopco", "Bad Name", "a", "b", actor=ACTOR)
