"""``open_store``: the server adapter when a URL is configured, else the embedded one."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pipeline.errors import StoreError
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.embedded import EmbeddedStore


def test_a_url_selects_the_server_adapter() -> None:
    settings = Settings(clickhouse_url=SecretStr("http://default:pw@127.0.0.1:1"))
    with pytest.raises(StoreError) as caught:
        open_store(settings)
    assert caught.value.fields["engine"] == "server"


@pytest.mark.integration
def test_no_url_selects_the_embedded_adapter(embedded_store: EmbeddedStore) -> None:
    settings = Settings(clickhouse_url=None, clickhouse_data_dir=embedded_store.path)
    opened = open_store(settings)
    try:
        assert isinstance(opened, EmbeddedStore)
        assert isinstance(opened, Store)
        assert opened.engine == "chdb"
        assert opened.query("SELECT 'ok' AS status") == [{"status": "ok"}]
    finally:
        opened.close()
    assert embedded_store.query("SELECT 1 AS still_open") == [{"still_open": 1}]
