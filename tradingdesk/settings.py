"""The desk's one settings module. Every value comes from the environment and has
a working default, so a bare checkout runs on SQLite, the paper broker and the
in-memory channel layer. Variable names follow the Trading Gateway's where they
exist (GATEWAY_HOST, GATEWAY_PORT, GATEWAY_API_KEY, GATEWAY_PROVIDER)."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from tradingdesk.env import envbool, envdecimal, envint, envsecret, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("DESK_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Metrics: one directory that every process of this desk on this machine writes its metrics into ---------
# and /metrics reads whole (prometheus_client's multi-process mode, which reads PROMETHEUS_MULTIPROC_DIR when it is
# imported: so it is set here, before anything imports it). Nothing empties it at start-up: see orders/metrics.py.
# A pytest process keeps its own, gone when the run ends; the desks the tests start use their own DESK_VAR_DIR's.
if envstr("DESK_METRICS_DIR"):
    METRICS_DIR = Path(envstr("DESK_METRICS_DIR"))
elif "pytest" in sys.modules:
    _test_metrics = tempfile.TemporaryDirectory(prefix="desk-test-metrics-")   # removed when the process exits
    METRICS_DIR = Path(_test_metrics.name)
else:
    METRICS_DIR = VAR_DIR / "metrics"
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)


def _secret_key() -> str:
    configured = envsecret("DESK_SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


SECRET_KEY = _secret_key()
DEBUG = envbool("DESK_DEBUG", False)
VERSION = "0.1.0"
GIT_SHA = envstr("GIT_SHA", "unknown")

GATEWAY_HOST = envstr("GATEWAY_HOST", "127.0.0.1")
GATEWAY_PORT = envint("GATEWAY_PORT", 8080, minimum=1)
IS_LOOPBACK_DEPLOYMENT = is_loopback_host(GATEWAY_HOST)



def _default_hosts(host: str) -> list[str]:
    """The names the desk answers to when DESK_ALLOWED_HOSTS is unset: the address it serves on
    (``[…]`` for IPv6), plus the loopback names when that address is loopback. A wildcard bind
    (0.0.0.0, ::) cannot know its names, so it needs DESK_ALLOWED_HOSTS."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        return []
    served = f"[{address}]" if address is not None and address.version == 6 else host
    if not IS_LOOPBACK_DEPLOYMENT:
        return [served]
    return list(dict.fromkeys([served, "127.0.0.1", "localhost", "[::1]"]))


def _csv(name: str) -> list[str]:
    return [part.strip() for part in envstr(name, "").split(",") if part.strip()]


ALLOWED_HOSTS = _csv("DESK_ALLOWED_HOSTS") or _default_hosts(GATEWAY_HOST)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(f"GATEWAY_HOST={GATEWAY_HOST} listens on every address: set DESK_ALLOWED_HOSTS "
                               "to the host names clients use")
CSRF_TRUSTED_ORIGINS = _csv("DESK_CSRF_TRUSTED_ORIGINS")

# --- API access ---------------------------------------------------------------------------------------
# GATEWAY_API_KEY: the protocol's single shared key (>= 32 characters); when set, every /v1 request
# needs a key. Keyless access is possible only for a loopback deployment and only from loopback clients.
GATEWAY_API_KEY = envsecret("GATEWAY_API_KEY")
if GATEWAY_API_KEY and len(GATEWAY_API_KEY) < 32:
    raise ImproperlyConfigured("GATEWAY_API_KEY must be at least 32 characters")
API_ALLOW_KEYLESS = IS_LOOPBACK_DEPLOYMENT and not GATEWAY_API_KEY and envbool("DESK_ALLOW_KEYLESS", True)
API_RATE_LIMIT_PER_MINUTE = envint("DESK_API_RATE_LIMIT_PER_MINUTE", 1200, minimum=0)
# Browsers: /v1 takes JSON only, and a request carrying an Origin is served only when that is the desk's
# own origin or listed here ("https://tools.example.com"), so no other web page can use a key or the
# keyless loopback access (orders/api/edge.py). CORS answers are given for the listed origins alone.
DESK_CORS_ORIGINS = _csv("DESK_CORS_ORIGINS")
for _origin in DESK_CORS_ORIGINS:
    _parts = urlsplit(_origin)
    if _parts.scheme not in ("http", "https") or not _parts.netloc or _parts.path not in ("", "/"):
        raise ImproperlyConfigured(f"DESK_CORS_ORIGINS: {_origin!r} is not an origin like https://host[:port]")
DESK_CORS_ORIGINS = [o.rstrip("/") for o in DESK_CORS_ORIGINS]
CORS_ALLOWED_ORIGINS = DESK_CORS_ORIGINS
CORS_URLS_REGEX = r"^/v1/"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-api-key")
CORS_EXPOSE_HEADERS = ("Idempotent-Replayed", "Retry-After", "X-Next-Cursor", "Link")
CORS_PREFLIGHT_MAX_AGE = 600
# the largest /v1 request body accepted; larger ones get 413 in the envelope
DESK_API_MAX_BODY_BYTES = envint("DESK_API_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# what Django itself reads of a body (2.5 MB by default) must cover the API's limit, or a chunked body over
# it would be refused quoting a limit that did not apply
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, DESK_API_MAX_BODY_BYTES)
ENABLE_SWAGGER = envbool("ENABLE_SWAGGER", True)
DESK_API_THREADS = envint("DESK_API_THREADS", 8, minimum=1)   # /v1's pooled threads (orders, lists, …)

# --- Broker -------------------------------------------------------------------------------------------
GATEWAY_PROVIDER = envstr("GATEWAY_PROVIDER", "paper")
PAPER_SEED = envint("PAPER_SEED", 7)
PAPER_CAPABILITY_PROFILE = envstr("PAPER_CAPABILITY_PROFILE", "none")  # native_bracket | native_oco | none
PAPER_INSTRUMENTS_FILE = envstr("PAPER_INSTRUMENTS_FILE", "")
PAPER_MARKET_HOURS = envstr("PAPER_MARKET_HOURS", "always")  # always | exchange
PAPER_STARTING_CASH = envdecimal("PAPER_STARTING_CASH", "100000")
ENGINE_TICK_SECONDS = float(envdecimal("ENGINE_TICK_SECONDS", "0.25"))
DESK_POOLED_WRITES = envbool("DESK_POOLED_WRITES", True)
# an alert nobody acknowledges within this many minutes is raised again as escalated (0: never)
DESK_ALERT_ESCALATE_MINUTES = envint("DESK_ALERT_ESCALATE_MINUTES", 5, minimum=0)
# alert channels (orders/services/channels.py): the engine sends each alert a channel is owed, retrying a failure
# after DESK_ALERT_RETRY_BASE_SECONDS, doubling (±25 % jitter) up to DESK_ALERT_RETRY_MAX_SECONDS, and gives up after
# DESK_ALERT_DELIVERY_ATTEMPTS tries; a channel that failed DESK_ALERT_CHANNEL_FAILING_AFTER times in a row since it
# last delivered raises CHANNEL_FAILING on the desk. A webhook waits DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS for an answer.
DESK_ALERT_DELIVERY_ATTEMPTS = envint("DESK_ALERT_DELIVERY_ATTEMPTS", 15, minimum=1)
DESK_ALERT_RETRY_BASE_SECONDS = float(envdecimal("DESK_ALERT_RETRY_BASE_SECONDS", "5"))
DESK_ALERT_RETRY_MAX_SECONDS = float(envdecimal("DESK_ALERT_RETRY_MAX_SECONDS", "600"))
DESK_ALERT_CHANNEL_FAILING_AFTER = envint("DESK_ALERT_CHANNEL_FAILING_AFTER", 3, minimum=1)
DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS = float(envdecimal("DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS", "5"))
# a webhook goes to https:// (http:// only to this machine unless DESK_ALERT_WEBHOOK_ALLOW_HTTP), and never to a host
# resolving to a private, loopback, link-local (cloud metadata) or unspecified address unless
# DESK_ALERT_WEBHOOK_ALLOW_PRIVATE (a receiver inside the desk's own network)
DESK_ALERT_WEBHOOK_ALLOW_HTTP = envbool("DESK_ALERT_WEBHOOK_ALLOW_HTTP", False)
DESK_ALERT_WEBHOOK_ALLOW_PRIVATE = envbool("DESK_ALERT_WEBHOOK_ALLOW_PRIVATE", False)
# e-mail channels go through Django's SMTP backend to this server
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = envstr("DESK_EMAIL_FROM", "tradingdesk@localhost")
# a real venue's account and positions are read by the engine this often (pushed when they change) ...
DESK_VENUE_POLL_SECONDS = envint("DESK_VENUE_POLL_SECONDS", 5, minimum=1)
# ... and read on demand when what is stored is older than this (fail closed after ten times it)
DESK_VENUE_MAX_AGE_SECONDS = envint("DESK_VENUE_MAX_AGE_SECONDS", 30, minimum=1)
# a full reconciliation with the venue (orders, positions; a report in the audit trail) runs at engine start,
# after every reconnect, and this often
DESK_RECONCILE_MINUTES = envint("DESK_RECONCILE_MINUTES", 5, minimum=1)
# outbox events older than this are deleted by the engine (relays read them live; 0 keeps them forever)
DESK_OUTBOX_KEEP_HOURS = envint("DESK_OUTBOX_KEEP_HOURS", 72, minimum=0)
# check every remembered exposure book against the database (orders/services/exposure.py); on in tests
DESK_VERIFY_EXPOSURE = envbool("DESK_VERIFY_EXPOSURE", False)
DESK_CACHES_COLD = envbool("DESK_CACHES_COLD", False)   # every cache of orders/caches.py misses (a test run)

# --- Streams ------------------------------------------------------------------------------------------
SUBSCRIPTIONS = envstr("SUBSCRIPTIONS", "")
try:
    _subscriptions = json.loads(SUBSCRIPTIONS) if SUBSCRIPTIONS.strip() else []
except ValueError as e:
    raise ImproperlyConfigured(f"SUBSCRIPTIONS must be a JSON array of subscriptions: {e}") from None
if not isinstance(_subscriptions, list):
    raise ImproperlyConfigured("SUBSCRIPTIONS must be a JSON array of subscriptions")
STREAM_POLL_SECONDS = float(envdecimal("STREAM_POLL_SECONDS", "0.02"))
STREAM_PING_SECONDS = float(envdecimal("STREAM_PING_SECONDS", "20"))
STREAM_IDLE_SECONDS = float(envdecimal("STREAM_IDLE_SECONDS", "60"))
STREAM_MARKET_SECONDS = float(envdecimal("STREAM_MARKET_SECONDS", "2"))
STREAM_QUEUE_SIZE = envint("STREAM_QUEUE_SIZE", 1024, minimum=1)
STREAM_DEFAULT_SYMBOLS = envstr("STREAM_DEFAULT_SYMBOLS", "AAPL,MSFT,BTCUSDT,F:EURUSD")

# --- Django -------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "django_htmx",
    "template_partials",
    "ninja",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "orders",
]

SERVE_STATIC = envbool("DESK_SERVE_STATIC", True)     # the web process serves /static/ itself (WhiteNoise)
MIDDLEWARE = [
    "orders.api.observe.http_metrics",   # first: counts and times every answer, refusals included
    "django.middleware.security.SecurityMiddleware",
    *(["tradingdesk.static.static_files"] if SERVE_STATIC else []),   # WhiteNoise (async-capable), before the rest
    "orders.api.edge.refuse_foreign_origins",
    "corsheaders.middleware.CorsMiddleware",
    "orders.api.dbguard.database_unavailable",   # a lost database answers 503 (envelope or page), not 500
    "orders.api.edge.api_body_rules",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orders.web.two_factor.second_factor_gate",   # a session still owing its second factor reaches only that step
    "axes.middleware.AxesMiddleware",   # last: turns a refused login into the lockout page
]
APPEND_SLASH = False

ROOT_URLCONF = "tradingdesk.urls"
ASGI_APPLICATION = "tradingdesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("DESK_SQLITE_PATH", str(VAR_DIR / "desk.sqlite3")),
            # persistent: pooled request threads keep their connection (orders/api/common.py: in_pool)
            "CONN_MAX_AGE": None,
            # IMMEDIATE: every transaction takes the write lock up front, so check-then-write
            # sequences (buying power, client_order_id) are serialised rather than racing.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA synchronous=NORMAL;",   # WAL is set once per file (orders/apps.py)
            },
        }
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or postgresql:// URL")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": envint("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # a kept connection is tested (SELECT 1) before its first use in each request, engine tick or pooled
        # call (orders/api/common.py: in_pool), so one that died with a database restart is replaced, not used
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5},   # a database that does not answer is an error in 5 s, not a hang
    }


DATABASES = {"default": _database(envsecret("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envsecret("REDIS_URL")
if REDIS_URL:
    # channels-redis waits for a consumer's messages with a blocking pop of 5 s (RedisChannelLayer.brpop_timeout);
    # redis-py's default socket_timeout is 5 s as well, so an idle wait raced the read deadline and lost
    # ("Timeout reading from …", the socket closed with 1011). The read deadline is three pops long; keepalive
    # and a PING before a command on a connection idle for 30 s find a dead Redis instead of waiting on it.
    # (The desk's own sockets take nothing from the layer: the outbox relay feeds them, orders/realtime/relay.py.)
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [{
        "address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5, "socket_keepalive": True,
        "health_check_interval": 30}]}}}
    # The cache holds the /v1 rate counters only (orders/api/auth.py), which fail open while Redis is away: a
    # request must not wait long for it, nor fail with it.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1, "socket_keepalive": True,
                                      "health_check_interval": 30}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------------------------------
# WhiteNoise serves them from the web process (DESK_SERVE_STATIC), collected into STATIC_ROOT with hashed names
# (desk.3f2a….css: cached a year, immutable) and gzip copies for browsers that take gzip (tradingdesk/static.py).
# `manage.py desk_static` collects them when a source is newer than the collection; bin/install and rundesk run
# it. STATIC_ROOT is one per checkout, not per DESK_VAR_DIR, so every desk started from it (tests included) finds
# it. With DESK_DEBUG the files are served from static/ as they are edited. The pytest process itself renders
# pages with plain names (nothing to collect); the desks the tests start are served as above.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if "pytest" in sys.modules
                    else "tradingdesk.static.GzipManifestStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = 60 if not DEBUG else 0        # a name without its hash (a bookmark) is checked again often

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SESSION_COOKIE_SECURE = envbool("DESK_SECURE_COOKIES", not IS_LOOPBACK_DEPLOYMENT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOG_LEVEL = envstr("DESK_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "tradingdesk.logging.RedactSecrets"},
                "quiet_refusals": {"()": "tradingdesk.logging.QuietRefusals"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "daphne": {"level": "WARNING"},
                "django.request": {"filters": ["quiet_refusals"]}},   # a 403 is one line, not a traceback
}

# --- Login throttling (django-axes) -------------------------------------------------------------------
# Every failed login, at /login/ and /admin/login/ alike (axes' backend sees every authenticate()), counts
# against the user name, normalised as the login form normalises it and casefolded ("risk ", " risk",
# "RISK" are one name), and against the client address. 5 failures lock the name, 20 from one address
# (over any names) lock the address, for 15 minutes after the last one; a locked client gets the login
# page again with 429, before its password is checked, and the same answer whether the name exists or
# not. axes compares every parameter with one limit, so the handler adds the address's own: see
# LoginThrottle in orders/web/login.py, with the name, address and lockout-page callables.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",              # first: refuses a locked client
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "orders.web.login.LoginThrottle"        # the database handler, plus the address limit
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]   # each counted on its own, not as a pair
AXES_FAILURE_LIMIT = 5                                 # per user name
DESK_LOGIN_ADDRESS_FAILURE_LIMIT = 20                  # per client address, over any names
AXES_COOLOFF_TIME = 15 / 60                            # hours (axes reads a float as hours): 15 minutes
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock ends 15 minutes after it began
AXES_RESET_ON_SUCCESS = True                           # only that name's failures from that address
AXES_USERNAME_CALLABLE = "orders.web.login.login_name"
AXES_CLIENT_IP_CALLABLE = "orders.web.login.login_address"   # the peer; X-Forwarded-For is not trusted
AXES_LOCKOUT_CALLABLE = "orders.web.login.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True                         # the audit trail records logins (user.login)
AXES_VERBOSE = False
# --- end of login throttling -------------------------------------------------------------------------

# --- Two-factor login (django-otp: TOTP authenticators and recovery codes) ----------------------------
# The risk and admin roles, superusers and staff must give a code from an authenticator app after their
# password; a trader must once they have set one up (/account/security/). Until then a session reaches only
# the code and set-up pages (orders/web/two_factor.py); a wrong code counts in axes as a failed login.
OTP_TOTP_ISSUER = envstr("DESK_OTP_ISSUER", "tradingdesk")   # the name authenticator apps show beside the code
OTP_ADMIN_HIDE_SENSITIVE_DATA = True        # the admin never shows a TOTP secret, its QR code or recovery codes
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code"]   # a near-miss code is not kept with the failure
