"""Append-only: the application role may only INSERT and SELECT; triggers refuse edits."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


@pytest.fixture
async def stored(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> ConsentDecision:
    """One decision stored through the ledger."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
    return decision


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions SET outcome = 'not_recorded_opted_out'",
        "DELETE FROM decisions",
        "UPDATE decision_personal SET caller_number = 'x'",
        "DELETE FROM decision_personal",
        "DELETE FROM ledger_events",
        "TRUNCATE decisions CASCADE",
    ],
)
async def test_app_role_cannot_update_or_delete(
    ledger_dsn: str, stored: ConsentDecision, sql: str
) -> None:
    """Even with a superuser DSN, the ledger's connections lack UPDATE/DELETE rights."""
    conn = await connect_app(ledger_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)
        assert "asterisk_recorder_app" == await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions SET outcome = 'not_recorded_opted_out'",
        "DELETE FROM decisions",
        "UPDATE decision_personal SET caller_name = 'x'",
        "DELETE FROM decision_personal",
        "TRUNCATE decisions CASCADE",
        "DELETE FROM ledger_head",
    ],
)
async def test_trigger_refuses_edits_even_by_the_owner(
    owner: asyncpg.Connection, stored: ConsentDecision, sql: str
) -> None:
    """The owner (here a superuser) is stopped by the append-only trigger."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(sql)

    assert 1 == await owner.fetchval("SELECT count(*) FROM decision_personal")


async def test_forgetting_flag_set_by_hand_does_not_help_the_app_role(
    ledger_dsn: str, stored: ConsentDecision
) -> None:
    """Setting the erase function's flag by hand still leaves the app role without DELETE."""
    conn = await connect_app(ledger_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('asterisk_recorder.forgetting', 'on', true)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM decision_personal")
    finally:
        await conn.close()


async def test_erase_function_resolves_names_only_in_the_ledger_schema(
    owner: asyncpg.Connection,
) -> None:
    """The SECURITY DEFINER function pins its search_path (pg_temp last)."""
    config = await owner.fetchval("SELECT proconfig FROM pg_proc WHERE proname = 'ledger_forget'")

    assert ["search_path=public, pg_temp"] == config
