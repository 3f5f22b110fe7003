"""``open_store``: the server the settings name; no URL is a configuration error, not a guess."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, StoreError
from pipeline.settings import Settings
from pipeline.store import Store, open_store


def test_no_url_is_a_config_error_naming_the_setting_and_the_launcher() -> None:
    with pytest.raises(ConfigError, match="PIPELINE_CLICKHOUSE_URL is not set") as caught:
        open_store(Settings(clickhouse_url=None))
    assert "python -m pipeline clickhouse start" in str(caught.value)
    assert caught.value.fields["setting"] == "PIPELINE_CLICKHOUSE_URL"


def test_a_url_is_reached_through_the_server_adapter() -> None:
    settings = Settings(clickhouse_url=SecretStr("http://default:pw@127.0.0.1:1"))
    with pytest.raises(StoreError) as caught:
        open_store(settings)
    assert caught.value.fields["engine"] == "server"


@pytest.mark.integration
def test_the_configured_server_answers(clickhouse_settings: Settings) -> None:
    opened = open_store(clickhouse_settings)
    try:
        assert isinstance(opened, Store)
        assert opened.engine == "server"
        assert opened.query("SELECT 'ok' AS status") == [{"status": "ok"}]
    finally:
        opened.close()
