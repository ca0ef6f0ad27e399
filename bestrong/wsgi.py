"""WSGI entry point of the BeStrong example project (``gunicorn bestrong.wsgi``)."""

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
# Loading the settings also reads .env; then refuse before serving anything without a key of its own.
if settings.PRODUCTION and not os.environ.get("DJANGO_SECRET_KEY", "").strip():
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: in production the admin needs a secret key of its own "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
application = get_wsgi_application()
