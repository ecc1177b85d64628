"""``manage.py rundesk``: the web server (daphne) and the engine side by side, supervised.

    manage.py rundesk                               # web + engine on GATEWAY_HOST:GATEWAY_PORT (127.0.0.1:8080)
    manage.py rundesk --no-engine --port 8081       # one more web process beside it (scale-out)
    manage.py rundesk --no-web                      # an engine only, supervised (a leader or a standby)

daphne serves the settings' ``ASGI_APPLICATION``, so a settings module chooses the app (``bench.settings``
serves ``bench.asgi``); both children inherit ``DJANGO_SETTINGS_MODULE`` from this process's environment
(``manage.py`` only sets it when it is unset, and ``--settings`` puts it there), and ``GATEWAY_HOST`` /
``GATEWAY_PORT`` as given by ``--host`` / ``--port``, so the allowed host names and keyless access follow the
address really served.

Supervision:

* the engine (``run_engine --wait``) is restarted whenever it exits, after 1 s, doubling to 30 s while it keeps
  exiting within a minute of its start. It stands by while another engine holds its accounts' leases.
* the web server is not restarted: if it exits (the port is taken, the settings are refused, it crashed), the
  desk stops, engine included, says so and exits with the web server's code (128 + N when signal N killed
  it), for whoever started it (a shell, systemd's ``Restart=on-failure``) to see. A web server that keeps
  failing would otherwise hide its cause in a restart loop.

Ctrl-C (or SIGTERM) stops both cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

RESTART_FIRST_SECONDS, RESTART_MAX_SECONDS = 1.0, 30.0
STABLE_SECONDS = 60.0           # an engine that ran this long is restarted after RESTART_FIRST_SECONDS again


def daphne_application(dotted: str) -> str:
    """``ASGI_APPLICATION``'s dotted path in daphne's ``module:attribute`` form."""
    module, _, attribute = dotted.rpartition(".")
    return f"{module}:{attribute}"


class Child:
    """One supervised process: how to start it, the process running now, and its restart backoff."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.delay = RESTART_FIRST_SECONDS

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at, self.restart_at = time.monotonic(), None

    def exited(self) -> int | None:
        """The exit code, once, when the running process has ended."""
        if self.process is None or self.process.poll() is None:
            return None
        code, self.process = self.process.returncode, None
        return code

    def schedule_restart(self, now: float) -> float:
        if now - self.started_at >= STABLE_SECONDS:
            self.delay = RESTART_FIRST_SECONDS
        delay, self.delay = self.delay, min(self.delay * 2, RESTART_MAX_SECONDS)
        self.restart_at = now + delay
        return delay

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)


class Command(BaseCommand):
    help = ("Run the web server and the engine together until interrupted; the engine is restarted if it exits, "
            "the desk stops if the web server does.")

    def add_arguments(self, parser):
        parser.add_argument("--no-engine", action="store_true", help="run the web server only (scale-out)")
        parser.add_argument("--no-web", action="store_true",
                            help="run the engine only, restarted whenever it exits (a leader or a standby)")
        parser.add_argument("--host", default=settings.GATEWAY_HOST,
                            help=f"address to serve on (default {settings.GATEWAY_HOST}, from GATEWAY_HOST)")
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT,
                            help=f"port to serve on (default {settings.GATEWAY_PORT}, from GATEWAY_PORT)")

    def handle(self, *args, **options):
        if options["no_web"] and options["no_engine"]:
            raise CommandError("--no-web and --no-engine together leave nothing to run")
        host, port = options["host"], options["port"]
        if not options["no_web"]:
            call_command("desk_static", verbosity=0)    # the pages name the collected files: collect what changed
        env = {**os.environ, "GATEWAY_HOST": host, "GATEWAY_PORT": str(port)}
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        web = None if options["no_web"] else Child("web server", [
            python, "-m", "daphne", "-b", host, "-p", str(port), daphne_application(settings.ASGI_APPLICATION)], env)
        engine = None if options["no_engine"] else Child("engine", [python, manage, "run_engine", "--wait"], env)
        self._stopping = False
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        children = [c for c in (web, engine) if c is not None]
        for child in children:
            child.start()
        shown = f"[{host}]" if ":" in host else host
        pids = ", ".join(f"{c.name} pid {c.process.pid}" for c in children)
        if web is None:
            self.stdout.write(f"engine supervised ({pids})  Ctrl-C to stop")
        else:
            self.stdout.write(f"desk running on http://{shown}:{port}/  (API docs: /v1/docs; {pids})  Ctrl-C to stop")
        exit_code = self._supervise(web, engine)
        self._stop_all(children)
        self.stdout.write("desk stopped")
        if exit_code:
            sys.exit(exit_code)

    def _supervise(self, web: Child | None, engine: Child | None) -> int:
        """Watch the children until stopped: restart the engine, stop on the web server's exit (its code)."""
        while not self._stopping:
            code = web.exited() if web is not None else None
            if code is not None:
                self.stderr.write(f"the web server exited with {code}; stopping the desk"
                                  f"{' and its engine' if engine else ''} (see the web server's output above)")
                return 128 - code if code < 0 else code or 1     # killed by signal N: 128 + N, as a shell says
            if engine is not None:
                self._tend_engine(engine)
            time.sleep(0.2)
        return 0

    def _tend_engine(self, engine: Child) -> None:
        now = time.monotonic()
        code = engine.exited()
        if code is not None:
            delay = engine.schedule_restart(now)
            self.stderr.write(f"the engine exited with {code}; restarting it in {delay:g} s")
        elif engine.restart_at is not None and now >= engine.restart_at:
            engine.start()
            self.stdout.write(f"engine restarted (pid {engine.process.pid})")

    def _stop(self, signum, frame):
        self._stopping = True

    def _stop_all(self, children: list[Child]) -> None:
        for child in children:
            child.stop()
        deadline = time.monotonic() + 10
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()            # reaped: no zombie left behind
