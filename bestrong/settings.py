"""Settings of the BeStrong example project.

The database comes from the environment (and a ``.env`` file at the project root;
real environment variables win): see ``dbmigrations.database`` for the precedence.
With nothing configured outside production, an embedded PostgreSQL is used.
"""

import os
from pathlib import Path

import environ

from dbmigrations import conf
from dbmigrations.database import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# BESTRONG_ENV_FILE points at another .env file (tests point it at nothing).
environ.Env.read_env(os.environ.get("BESTRONG_ENV_FILE") or BASE_DIR / ".env", overwrite=False)

PRODUCTION = conf.is_production(os.environ)

# In production there is no default key: the web server refuses to start without DJANGO_SECRET_KEY
# (bestrong/wsgi.py), while the migration commands, which sign nothing, still run.
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="" if PRODUCTION else "django-insecure-bestrong-local-development-only"
)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
if os.environ.get("VERCEL_URL"):
    ALLOWED_HOSTS.append(os.environ["VERCEL_URL"])

if PRODUCTION:  # `manage.py check --deploy` is clean with these; each can be turned off for a plain-HTTP test
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # Vercel and most hosts terminate TLS
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    # Before staticfiles: its runserver also warns about pending SQL migrations.
    "dbmigrations",
    # django.contrib.admin, its admin modules imported by the URLconf and the checks, not by every command.
    "bestrong.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JS) under runserver, gunicorn or any WSGI server, DEBUG or not.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bestrong.urls"
WSGI_APPLICATION = "bestrong.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": database_settings(os.environ)}

# SQL_MIGRATIONS_DIR, SQL_SEEDS_DIR, SQL_EMBEDDED_PGDATA, SQL_MIGRATIONS_SCHEMA, NODE_ENV, VERCEL,
# VERCEL_ENV and SQL_MIGRATIONS_ON_PREVIEW are read from the environment by dbmigrations.conf when used (a
# relative folder is relative to BASE_DIR). Setting SQL_MIGRATIONS_DIR etc. here would override
# the environment variable of the same name.

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Served straight from the apps' static folders: no collectstatic step to forget on a deploy.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = not PRODUCTION
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "dbmigrations": {"handlers": ["console"], "level": env.str("SQL_MIGRATIONS_LOG_LEVEL", default="WARNING")}
    },
}
