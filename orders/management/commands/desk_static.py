"""``manage.py desk_static``: collect the static files into ``STATIC_ROOT`` (hashed names, gzip and brotli copies;
``collectstatic`` with the settings' storage) when the collection is missing or out of date: a source file newer
than it, or one it does not list. Otherwise it does nothing, quickly. ``bin/install`` and ``rundesk`` run it, so a
desk never renders a page naming a file it has not collected. Processes starting together take turns (a file
lock): the first collects, the others find it done.

    manage.py desk_static            # collect if out of date
    manage.py desk_static --force    # collect anyway
"""

from __future__ import annotations

import fcntl
import json
import os

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.core.management.base import BaseCommand

IGNORED = ["CVS", ".*", "*~"]          # collectstatic's own default ignore patterns


def out_of_date() -> str | None:
    """Why the collection must be made again, or None when it is up to date."""
    manifest_name = getattr(staticfiles_storage, "manifest_name", None)
    if manifest_name is None:
        return None                     # a storage without a manifest (DESK_DEBUG, the test process) serves sources
    manifest = settings.STATIC_ROOT / manifest_name
    try:
        collected_at = manifest.stat().st_mtime
        listed = json.loads(manifest.read_text()).get("paths", {})
    except (OSError, ValueError):
        return "no collection yet"
    for finder in get_finders():
        for path, storage in finder.list(IGNORED):
            name = path.replace(os.sep, "/")
            prefix = getattr(storage, "prefix", None)
            name = f"{prefix}/{name}" if prefix else name
            if name not in listed:
                return f"{name} is new"
            if os.path.getmtime(storage.path(path)) > collected_at:
                return f"{name} changed"
    return None


class Command(BaseCommand):
    help = "Collect the static files (hashed, compressed) when the collection is missing or out of date."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="collect even when up to date")

    def handle(self, *args, **options):
        root = settings.STATIC_ROOT
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".collecting.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)        # another process collecting: wait, then find it done
            reason = "asked to" if options["force"] else out_of_date()
            if reason is None:
                if options["verbosity"] > 1:
                    self.stdout.write(f"static files up to date in {root}")
                return
            call_command("collectstatic", interactive=False, verbosity=0)
        if options["verbosity"] > 0:
            self.stdout.write(f"static files collected into {root} ({reason})")
