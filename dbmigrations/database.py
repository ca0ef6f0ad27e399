"""Which database to use: environment variables → a Django ``DATABASES`` entry.

The first variable set (and not empty) wins, in the order Vercel and Neon users
expect: a direct (non-pooling) URL before a pooled one. Pooled URLs carry query
parameters meant for Prisma or PgBouncer that libpq rejects; only the parameters
libpq knows survive. Everything shown to a human goes through :func:`mask_url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode

from . import conf
from .exceptions import ConfigurationError, DbMigrationsError, ProductionGuard

URL_VARIABLES = (
    "DATABASE_URL_UNPOOLED",
    "POSTGRES_URL_NON_POOLING",
    "DATABASE_URL",
    "POSTGRES_URL",
    "POSTGRES_PRISMA_URL",
)
PARTS_VARIABLES = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DATABASE",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
)
DIRECT_VARIABLES = ("DATABASE_URL_UNPOOLED", "POSTGRES_URL_NON_POOLING")
EMBEDDED_SOURCE = "embedded"
EMBEDDED_ENGINE = "dbmigrations.backends.embedded"
# Django's PostgreSQL backend that raises ImproperlyConfigured instead of connecting (see connection_refusal).
GUARDED_ENGINE = "dbmigrations.backends.postgresql"
POSTGRES_ENGINE = "django.db.backends.postgresql"
SCHEMES = ("postgres", "postgresql")
SECRET_PARAMS = {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
# A frozen network link must not leave a deploy waiting forever: over TCP, libpq asks the kernel to probe an
# idle connection (after 30 s, every 10 s, 3 misses: about a minute) and to give up on data unacknowledged for
# a minute. The URL's own values win; unix sockets have no link to lose.
TCP_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


def libpq_keywords() -> frozenset[str]:
    """Connection keywords the linked libpq understands (its own list, not ours)."""
    from psycopg import pq

    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


@dataclass(frozen=True)
class DatabaseTarget:
    """A resolved database: where it came from and how Django should connect."""

    source: str
    settings: dict = field(repr=False)  # holds the password
    masked_url: str
    dropped_params: tuple[str, ...] = ()
    pooled: bool = False
    password: str = field(default="", repr=False)

    @property
    def is_embedded(self) -> bool:
        return self.source == EMBEDDED_SOURCE

    def describe(self) -> str:
        """One line for humans: masked URL and the variable it came from."""
        if self.is_embedded:
            return f"embedded PostgreSQL ({self.masked_url})"
        return f"{self.masked_url} (from {self.source})"


def database_settings(environ: Mapping[str, str], *, embedded_name: str = "bestrong") -> dict:
    """``DATABASES["default"]`` for settings.py. A configuration error is kept, not raised,
    so ``manage.py`` still starts: the tool's commands report it in one line (exit 2), and
    Django's own get it as ``ImproperlyConfigured`` (:data:`GUARDED_ENGINE`, system check E011)."""
    try:
        return resolve_database(environ, embedded_name=embedded_name).settings
    except ConfigurationError as error:
        return {**embedded_target(embedded_name).settings, "ENGINE": GUARDED_ENGINE, "CONFIG_ERROR": str(error)}


def connection_refusal(settings: Mapping) -> DbMigrationsError | None:
    """Why a ``DATABASES`` entry must not be connected to, or None.

    Its configuration error (``CONFIG_ERROR``), or the embedded development server in
    production. Reads the settings and the environment only: runs before any connection.
    """
    if settings.get("CONFIG_ERROR"):
        return ConfigurationError(settings["CONFIG_ERROR"])
    if settings.get("ENGINE") == EMBEDDED_ENGINE and conf.is_production():
        return ProductionGuard(
            conf.production_refusal(
                "embedded development database",
                "no database is configured; set DATABASE_URL_UNPOOLED, POSTGRES_URL_NON_POOLING or DATABASE_URL "
                "(the embedded server is for development only).",
            )
        )
    return None


def target_from_settings(settings: Mapping) -> DatabaseTarget:
    """Rebuild the :class:`DatabaseTarget` of a Django ``DATABASES`` entry (for display and checks)."""
    if settings.get("CONFIG_ERROR"):
        raise ConfigurationError(settings["CONFIG_ERROR"])
    source = settings.get("SOURCE") or "settings.DATABASES"
    if source == EMBEDDED_SOURCE:
        return embedded_target(settings.get("NAME") or "bestrong")
    user, password = settings.get("USER") or "", settings.get("PASSWORD") or ""
    host, port, name = settings.get("HOST") or "", str(settings.get("PORT") or ""), settings.get("NAME") or ""
    options = {
        k: v for k, v in (settings.get("OPTIONS") or {}).items() if isinstance(v, str) and TCP_DEFAULTS.get(k) != v
    }  # the defaults added for TCP are not news
    masked = _masked(user, bool(password), host, port, name, options)
    pooled = settings.get("POOLED", _looks_pooled(host, port, {}))
    return DatabaseTarget(source, dict(settings), masked, (), bool(pooled), password)


def resolve_database(environ: Mapping[str, str], *, embedded_name: str = "bestrong") -> DatabaseTarget:
    """Pick the database from ``environ``; the embedded default when nothing is set.

    Empty variables count as unset (Vercel leaves them empty). Whether the
    embedded default is allowed (not in production) is decided when connecting.
    """
    for name in URL_VARIABLES:
        value = conf.variable(name, environ)
        if value:
            return parse_database_url(value, source=name)
    if conf.variable("POSTGRES_HOST", environ):
        return _from_parts(environ)
    return embedded_target(embedded_name)


def embedded_target(name: str = "bestrong") -> DatabaseTarget:
    """The embedded development server's database ``name`` (its socket is found when connecting)."""
    settings = {
        "ENGINE": EMBEDDED_ENGINE,
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "OPTIONS": {},
        "SOURCE": EMBEDDED_SOURCE,
        "POOLED": False,
    }
    return DatabaseTarget(EMBEDDED_SOURCE, settings, f"postgresql://postgres@localhost/{name}")


def _from_parts(environ: Mapping[str, str]) -> DatabaseTarget:
    missing = [n for n in ("POSTGRES_DATABASE", "POSTGRES_USER") if not conf.variable(n, environ)]
    if missing:
        raise ConfigurationError(
            "POSTGRES_HOST is set but " + " and ".join(missing) + " is not; set them or use a URL variable"
        )
    host, port = conf.variable("POSTGRES_HOST", environ), conf.variable("POSTGRES_PORT", environ) or "5432"
    user, password = conf.variable("POSTGRES_USER", environ), environ.get("POSTGRES_PASSWORD") or ""
    name = conf.variable("POSTGRES_DATABASE", environ)
    _check_port(port, "POSTGRES_PORT")
    settings = _settings(
        name, user, password, host, port, {}, source="POSTGRES_HOST", pooled=_looks_pooled(host, port, {})
    )
    return DatabaseTarget(
        "POSTGRES_HOST",
        settings,
        _masked(user, bool(password), host, port, name, {}),
        (),
        settings["POOLED"],
        password,
    )


def parse_database_url(url: str, *, source: str = "DATABASE_URL") -> DatabaseTarget:
    """Turn a ``postgres://`` URL into a Django settings entry, dropping non-libpq parameters."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        # Never echo the value: without "://" the "scheme" is the whole URL, password included.
        shown = f" (scheme {scheme.lower()!r})" if sep and scheme.isalnum() and len(scheme) < 20 else ""
        raise ConfigurationError(f"{source} is not a postgres:// or postgresql:// URL{shown}")
    rest, _, _fragment = rest.partition("#")
    authority_path, _, query = rest.partition("?")
    authority, _, path = authority_path.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        if "@" in url.partition("://")[2]:  # never echoed: the text after "/", "?" or "#" is a password's end
            raise ConfigurationError(
                f"{source} has '@' after the host part: percent-encode '/', '?', '#' in the password (%2F, %3F, %23)"
            )
        userinfo, hostport = "", authority
    user, _, password = userinfo.partition(":")
    user, password = unquote(user), unquote(password)
    host, port = _split_host_port(unquote(hostport))
    name = unquote(path)

    kept: dict[str, str] = {}
    dropped: list[str] = []
    known = libpq_keywords()
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in ("host", "hostaddr") and not host:
            host = value
        elif key == "port" and not port:
            port = value
        elif key == "dbname" and not name:
            name = value
        elif key == "user" and not user:
            user = value
        elif key == "password" and not password:
            password = value
        elif key in known and key not in ("host", "port", "dbname", "user", "password"):
            kept[key] = value
        else:
            dropped.append(key)
    if not name:
        raise ConfigurationError(f"{source} names no database (the URL needs a /dbname path)")
    _check_port(port, source)
    pooled = _looks_pooled(host, port, dict(parse_qsl(query)))
    settings = _settings(name, user, password, host, port, kept, source=source, pooled=pooled)
    masked = _masked(user, bool(password), host, port, name, kept)
    return DatabaseTarget(source, settings, masked, tuple(dropped), pooled, password)


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("/"):
        return hostport, ""
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        return host, after.lstrip(":")
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, port
    return hostport, ""


def _check_port(port: str, source: str) -> None:
    """Refuse a port that is not a number (libpq would blame the host name instead)."""
    # Not echoed: in "user:secret/db" (no host) the "port" is the password.
    if port and not all(p.strip().isdigit() for p in port.split(",")):
        raise ConfigurationError(f"{source} has a port that is not a number (expected host:5432)")


def _looks_pooled(host: str, port: str, params: Mapping[str, str]) -> bool:
    """Neon's ``-pooler`` hosts, PgBouncer URLs and Supabase's pooler port."""
    return "-pooler" in host or params.get("pgbouncer", "").lower() == "true" or port == "6543"


def _uses_tcp(host: str, options: Mapping[str, str]) -> bool:
    """Whether libpq may connect over TCP: a host name or address (not a socket directory), or a hostaddr."""
    hosts = [h.strip() for h in (host or options.get("host", "")).split(",")]
    return bool(options.get("hostaddr")) or any(h and not h.startswith(("/", "@")) for h in hosts)


def _with_tcp_defaults(host: str, options: Mapping[str, str]) -> dict:
    if not _uses_tcp(host, options) or options.get("keepalives") == "0":
        return dict(options)
    return {**TCP_DEFAULTS, **options}


def _settings(name, user, password, host, port, options, *, source, pooled) -> dict:
    options = _with_tcp_defaults(host, options)
    return {
        "ENGINE": POSTGRES_ENGINE,
        "NAME": name,
        "USER": user,
        "PASSWORD": password,
        "HOST": host,
        "PORT": port,
        "OPTIONS": dict(options),
        "SOURCE": source,
        "POOLED": pooled,
    }


def _masked(user: str, has_password: bool, host: str, port: str, name: str, options: Mapping[str, str]) -> str:
    credentials = ""
    if user:
        credentials = quote(user, safe="") + (":***" if has_password else "") + "@"
    if host.startswith("/"):
        location, options = "", {**options, "host": host}
    else:
        location = f"[{host}]" if ":" in host else host
        location += f":{port}" if port else ""
    shown = {k: ("***" if k in SECRET_PARAMS else v) for k, v in options.items()}
    query = ("?" + urlencode(shown, safe="/")) if shown else ""
    return f"postgresql://{credentials}{location}/{quote(name, safe='')}{query}"


def mask_url(url: str) -> str:
    """Mask the password of any postgres URL; anything unparsable is hidden whole."""
    try:
        return parse_database_url(url, source="url").masked_url
    except ConfigurationError:
        return "<unparsable database URL>"


def scrub(text: str, *secrets: str) -> str:
    """Replace every secret (and its URL-encoded form) in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "***")
    return text
