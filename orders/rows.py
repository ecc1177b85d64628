"""A lean INSERT for the rows written on every order: the order, its outbox event, its audit record.

``Model.save()`` builds and compiles its INSERT afresh on every call, which is most of what a row costs on
the order path. ``insert_row`` compiles the statement once per model and database, and converts every value
with the model field's own ``pre_save`` and ``get_db_prep_save``, so the row is the one ``save(force_insert=True)``
would have written. It sends no ``pre_save``/``post_save`` signals: the desk connects none.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


def insert_row(obj: Model) -> Model:
    """INSERT ``obj`` as a new row; an auto-increment primary key is filled in from the database."""
    meta = obj._meta
    generated = meta.pk if getattr(meta.pk, "db_returning", False) else None
    fields = [f for f in meta.concrete_fields if f is not generated]
    sql = _statement(type(obj), fields, generated)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if generated is not None:
            obj.pk = cursor.fetchone()[0] if " RETURNING " in sql else cursor.lastrowid
    obj._state.adding, obj._state.db = False, connection.alias
    return obj


_statements: dict[tuple[str, type[Model]], str] = {}


def _statement(model: type[Model], fields: list, generated) -> str:
    key = (connection.vendor, model)
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name      # table and column names from the model, values as parameters
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        if generated is not None and connection.features.can_return_columns_from_insert:
            sql += f" RETURNING {quote(generated.column)}"
        _statements[key] = sql
    return sql
