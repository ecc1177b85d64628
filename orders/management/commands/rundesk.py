"""``manage.py rundesk``: the web server (daphne) and the engine side by side, stopped together.

daphne serves the settings' ``ASGI_APPLICATION``, so a settings module chooses the app (``bench.settings``
serves ``bench.asgi``); both children inherit ``DJANGO_SETTINGS_MODULE`` from this process's environment
(``manage.py`` only sets it when it is unset, and ``--settings`` puts it there).

Ctrl-C (or SIGTERM) stops both cleanly; if either exits on its own, the other is stopped too."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def daphne_application(dotted: str) -> str:
    """``ASGI_APPLICATION``'s dotted path in daphne's ``module:attribute`` form."""
    module, _, attribute = dotted.rpartition(".")
    return f"{module}:{attribute}"


class Command(BaseCommand):
    help = "Run the web server and the engine together until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--no-engine", action="store_true", help="run the web server only")

    def handle(self, *args, **options):
        host, port = settings.GATEWAY_HOST, settings.GATEWAY_PORT
        python = sys.executable
        web = subprocess.Popen([python, "-m", "daphne", "-b", host, "-p", str(port),
                                daphne_application(settings.ASGI_APPLICATION)])
        children = [web]
        if not options["no_engine"]:
            children.append(subprocess.Popen([python, "manage.py", "run_engine"]))
        self.stdout.write(f"desk running on http://{host}:{port}/  (API docs: /v1/docs)  Ctrl-C to stop")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    self.stderr.write(f"{child.args[2] if len(child.args) > 2 else child.args} exited "
                                      f"with {child.returncode}; stopping the desk")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.2)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        self.stdout.write("desk stopped")
        if exit_code:
            sys.exit(exit_code)
