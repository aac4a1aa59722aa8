"""Append-only tables: stored rows are never updated or deleted, only new rows added.

Gate decisions are evidence and promotions are the history of baselines, so changing a stored row
would rewrite what was decided. The database refuses it with row triggers (migration
``2d2bc039dac6``); the guards here refuse it earlier, in Python, with an error that names the row:

- a loaded object whose columns were changed, or that was deleted, fails at flush
  (mapper ``before_update`` / ``before_delete`` events);
- an ORM ``update(Model)`` / ``delete(Model)`` statement fails before it is sent
  (session ``do_orm_execute`` event).

Raw SQL (``text("UPDATE ...")``) bypasses the ORM and is refused by the triggers instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session

APPEND_ONLY_MODELS: list[type[Any]] = []
"""The mapped classes guarded by ``guard``."""


class AppendOnlyError(RuntimeError):
    """An attempt to update or delete a stored row of an append-only table."""


def guard(*models: type[Any]) -> None:
    """Refuse updates and deletes of ``models``' rows through the ORM (see the module docstring)."""
    for model in models:
        if model in APPEND_ONLY_MODELS:
            continue
        APPEND_ONLY_MODELS.append(model)
        event.listen(model, "before_update", _refuse_update)
        event.listen(model, "before_delete", _refuse_delete)
    if not event.contains(Session, "do_orm_execute", _refuse_bulk_change):
        event.listen(Session, "do_orm_execute", _refuse_bulk_change)


def _refuse_update(_mapper: Any, _connection: Any, target: Any) -> None:
    """Raise when a flush would write changed columns of a stored row (no-op flushes pass)."""
    changed = sorted(attr.key for attr in inspect(target).attrs if attr.history.has_changes())
    if changed:
        raise AppendOnlyError(
            f"{target.__tablename__} is append-only: row id {target.id} cannot be updated "
            f"(changed: {', '.join(changed)}); store a new row instead"
        )


def _refuse_delete(_mapper: Any, _connection: Any, target: Any) -> None:
    """Raise when a flush would delete a stored row."""
    raise AppendOnlyError(f"{target.__tablename__} is append-only: row id {target.id} cannot be deleted")


def _refuse_bulk_change(state: ORMExecuteState) -> None:
    """Raise on an ORM UPDATE or DELETE statement that targets an append-only table."""
    if not (state.is_update or state.is_delete):
        return
    for mapper in state.all_mappers:
        if mapper.class_ in APPEND_ONLY_MODELS:
            operation = "UPDATE" if state.is_update else "DELETE"
            raise AppendOnlyError(
                f"{mapper.class_.__tablename__} is append-only: {operation} statements are refused"
            )
