"""Lean statements for the rows touched on every order: the account row read under its lock, and the
order, its outbox event and its audit record written; and the engine's per-tick update of every working
order's venue-side state.

The ORM builds and compiles each statement afresh on every call, which is most of what a row costs on the
order path. These compile a statement once per model and database and convert every value with the model
field's own functions, so a row written is the one ``save(force_insert=True)`` writes and a value read is the
one a queryset returns. No ``pre_save``/``post_save`` signals are sent: the desk connects none.

Every statement here (and ``services/exposure.py``'s version read, ``events.lock_outbox``) runs on Django's own
cursor (``connection.cursor()``), never the driver's: a connection is health-checked before its first use in a
request or pooled call (``CONN_HEALTH_CHECKS``), and a failure marks it for replacement, exactly as for ORM
queries, so a database restart costs these no more than it costs the ORM.
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


def read_row(model: type[Model], pk, names: tuple[str, ...], *, for_update: bool = False) -> tuple | None:
    """The ``names`` columns of one row by primary key (``for_update``: and lock it until the transaction
    ends, where the database has row locks), or None when there is no such row."""
    fields = [model._meta.get_field(name) for name in names]
    key = ("read", connection.vendor, model, names, for_update)
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        sql = (f"SELECT {columns} FROM {quote(model._meta.db_table)} "  # noqa: S608 - names from the model
               f"WHERE {quote(model._meta.pk.column)} = %s")
        if for_update and connection.features.has_select_for_update:
            sql += " FOR UPDATE"
        _statements[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    return None if row is None else tuple(_from_db(f, value) for f, value in zip(fields, row, strict=True))


def _from_db(field, value):
    column = field.cached_col
    for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
        value = convert(value, column, connection)
    return value


_statements: dict[tuple, str] = {}


def update_rows(model: type[Model], names: tuple[str, ...], rows: list[tuple], *, unless: tuple[str, tuple],
                still: tuple[str, ...] = ()) -> int:
    """One parameterised UPDATE of the ``names`` columns run for every ``(pk, *values, *still_values)`` in
    ``rows`` (``executemany``: compiled once, no per-row expression building as ``bulk_update`` does),
    skipping rows whose ``unless[0]`` column holds one of ``unless[1]`` and rows whose ``still`` columns no
    longer hold the values given (a compare-and-set; NULL equals NULL). Returns how many rows changed."""
    if not rows:
        return 0
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    guard, excluded = meta.get_field(unless[0]), tuple(unless[1])
    kept = [meta.get_field(name) for name in still]
    key = ("update", connection.vendor, model, names, guard.column, len(excluded), still)
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        among = ", ".join(["%s"] * len(excluded))
        same = " IS %s" if connection.vendor == "sqlite" else " IS NOT DISTINCT FROM %s"
        unchanged = "".join(f" AND {quote(f.column)}{same}" for f in kept)
        sql = (f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608 - names from the model
               f"WHERE {quote(meta.pk.column)} = %s AND {quote(guard.column)} NOT IN ({among}){unchanged}")
        _statements[key] = sql
    guard_values = [guard.get_db_prep_value(v, connection) for v in excluded]
    width = len(fields)
    params = [[f.get_db_prep_save(value, connection) for f, value in zip(fields, values[:width], strict=True)]
              + [meta.pk.get_db_prep_value(pk, connection)] + guard_values
              + [f.get_db_prep_save(value, connection) for f, value in zip(kept, values[width:], strict=True)]
              for pk, *values in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return max(cursor.rowcount, 0)


def _statement(model: type[Model], fields: list, generated) -> str:
    key = ("insert", connection.vendor, model)
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
