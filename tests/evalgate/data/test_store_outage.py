"""An add that the database fails after the files are written leaves no files behind, even though the
cleanup cannot ask the database whether a version uses them; files a committed version may need are
kept. The database goes away between writing and registering: its URL switched to a refused port (on
SQLite and PostgreSQL), or the network to the real PostgreSQL cut by the reliability tests' relay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, event
from sqlalchemy import exc as sa
from sqlalchemy.engine import make_url

from evalgate.core.settings import Settings
from evalgate.data import store as store_module
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.db.session import engine_for, session_factory
from tests.api.service import ServerPort
from tests.reliability.relay import Relay

ROWS = [{"id": f"r{i}", "question": f"question {i}"} for i in range(6)]
WriteFiles = Callable[[str, list[Any]], dict[str, dict[str, Any]]]


def files_under(root: str) -> list[Path]:
    """Every file below ``root`` (empty folders do not count)."""
    return sorted(path for path in Path(root).rglob("*") if path.is_file())


@pytest.fixture
def unreachable() -> Iterator[str]:
    """A PostgreSQL URL whose port refuses every connection (held, never listening, for the test)."""
    with ServerPort() as refusing:
        url = f"postgresql+psycopg://nobody@127.0.0.1:{refusing.number}/gone"
        yield url
        engine_for(url).dispose()


def write_then(action: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store run ``action`` right after it has written a version's files."""
    write: WriteFiles = store_module.write_version_files

    def write_and_act(folder: str, rows: list[Any]) -> dict[str, dict[str, Any]]:
        files = write(folder, rows)
        assert files_under(folder), "the files were written before the outage"
        action()
        return files

    monkeypatch.setattr(store_module, "write_version_files", write_and_act)


def test_an_add_whose_database_goes_away_after_writing_leaves_no_files(
    store: DatasetStore, write_jsonl: Callable[..., str], unreachable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = write_jsonl("rows.jsonl", ROWS)
    reachable = store.sessions
    write_then(lambda: setattr(store, "sessions", session_factory(unreachable)), monkeypatch)

    with pytest.raises(sa.OperationalError, match=r"Connection refused|connection failed"):
        store.add("suite", [rows])

    assert files_under(store.artifact_root) == []
    store.sessions = reachable
    assert store.versions() == []


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_add_cut_off_from_postgres_after_writing_leaves_no_files(
    settings: Settings, write_jsonl: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(settings.resolved_database_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed_url = url.set(port=relay.port).render_as_string(hide_password=False)
    store = DatasetStore.from_settings(Settings(home=settings.home, database_url=relayed_url))
    rows = write_jsonl("rows.jsonl", ROWS)
    write_then(relay.cut, monkeypatch)
    try:
        with pytest.raises(sa.OperationalError):
            store.add("suite", [rows])
    finally:
        relay.close()
        engine_for(relayed_url).dispose()

    assert files_under(store.artifact_root) == []
    assert DatasetStore.from_settings(settings).versions() == []


def test_a_commit_lost_with_its_connection_keeps_the_files_the_version_may_need(
    store: DatasetStore, write_jsonl: Callable[..., str], unreachable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = write_jsonl("rows.jsonl", ROWS)
    reachable = store.sessions
    engine = reachable.kw["bind"]

    def lose_the_connection(_: Connection) -> None:  # the COMMIT's answer never arrives
        store.sessions = session_factory(unreachable)
        raise sa.OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection"))

    write_then(lambda: event.listen(engine, "commit", lose_the_connection), monkeypatch)
    try:
        with pytest.raises(sa.OperationalError, match="server closed the connection"):
            store.add("suite", [rows])
    finally:
        event.remove(engine, "commit", lose_the_connection)
    kept = files_under(store.artifact_root)
    store.sessions = reachable

    assert kept, "the version may have been committed: its files must stay"
    monkeypatch.undo()
    again = store.add("suite", [rows])  # here the commit did not happen: the next add registers it
    assert again.created and len(store.rows("suite@v1")) == len(ROWS)


def test_an_outage_keeps_a_folder_that_was_there_before_the_add(
    tmp_path: Path, write_jsonl: Callable[..., str], unreachable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores on one artifact root: the second writes the folder the first registered, then loses
    its database; the folder is the first one's, and stays."""
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("first", "second")]
    for url in urls:
        upgrade(url)
    first = DatasetStore.from_settings(Settings(home=tmp_path / "home", database_url=urls[0]))
    second = DatasetStore(session_factory(urls[1]), first.artifact_root, first.settings)
    rows = write_jsonl("rows.jsonl", ROWS)
    first.add("suite", [rows])
    before = files_under(first.artifact_root)
    write_then(lambda: setattr(second, "sessions", session_factory(unreachable)), monkeypatch)

    with pytest.raises(sa.OperationalError):
        second.add("suite", [rows])

    assert files_under(first.artifact_root) == before
    assert len(first.rows("suite@v1")) == len(ROWS)
