"""WSGI entry point of the BeStrong example project."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
application = get_wsgi_application()
