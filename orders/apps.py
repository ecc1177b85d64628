from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Trading desk"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(_keep_sqlite_open, dispatch_uid="keep-sqlite-open")


_keeper = None


def _keep_sqlite_open(sender, connection, **kwargs) -> None:
    """Hold one idle connection to the SQLite file for the life of the process.

    Each request runs on a thread of its own with a connection of its own; when the last
    connection to a WAL database closes, SQLite checkpoints and deletes the WAL, which made every
    request pay for a checkpoint. With one connection always open, closing never checkpoints;
    SQLite still checkpoints automatically as the WAL grows."""
    global _keeper
    if _keeper is not None or connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        return
    import sqlite3

    _keeper = sqlite3.connect(name, check_same_thread=False)
    _keeper.execute("PRAGMA journal_mode=WAL")
