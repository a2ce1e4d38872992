"""The session store: a database created by an earlier version is named, not half used."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from voice_app.app import create_app, get_services
from voice_app.errors import ConfigError
from voice_app.store import Store


def test_a_database_missing_a_newer_column_is_refused_with_the_statement_that_adds_it(
    app_config: dict[str, Any],
) -> None:
    old = Store(app_config["database_url"])
    old.create_schema()
    with old.engine.begin() as connection:
        connection.execute(text("ALTER TABLE calls DROP COLUMN analysis"))  # as before it existed
    old.dispose()

    with pytest.raises(ConfigError) as refused:
        create_app(app_config)

    statement = "ALTER TABLE calls ADD COLUMN analysis JSON"
    assert statement in str(refused.value)
    with old.engine.begin() as connection:
        connection.execute(text(statement))
    old.dispose()
    app = create_app(app_config)  # what the message says to run is enough
    get_services(app).store.dispose()
