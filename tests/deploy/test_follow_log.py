"""An alias that cannot be checked (the model deleted, the database down) is logged once
when it starts failing and once when it recovers, not on every poll while the server
keeps serving."""

from __future__ import annotations

import asyncio
import logging

from launchml.deploy.models import ModelManager, ServeOptions, Source


def test_a_failing_alias_check_is_logged_once_until_it_changes(caplog):
    manager = ModelManager([Source.parse("cancer@champion", registry=True)], ServeOptions())
    outcomes = iter([RuntimeError("no model 'cancer'")] * 3
                    + [RuntimeError("database is down"), None, None])

    async def refresh(name):
        e = next(outcomes)
        if e is not None:
            raise e
        return {"result": "unchanged"}

    manager.refresh = refresh  # type: ignore[method-assign]

    async def polls():
        for _ in range(6):
            await manager._check("cancer")

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        asyncio.run(polls())
    said = [r.getMessage() for r in caplog.records if "cancer" in r.getMessage()]
    assert len([m for m in said if "no model 'cancer'" in m]) == 1
    assert len([m for m in said if "database is down" in m]) == 1
    assert len([m for m in said if "can be checked again" in m]) == 1
    manager._pool.shutdown()
