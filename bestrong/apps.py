"""The admin of the BeStrong project, its modules imported when they are used.

Django's default ``AdminConfig`` imports every app's ``admin`` module in ``ready()``
(``django.contrib.auth.admin`` brings the auth forms and the admin's options, filters and
widgets), so every process pays for it: each ``manage.py`` command, the SQL commands
included. Here the URLconf imports them (``bestrong/urls.py``: the first request), and so
do the admin's system checks, which check every registered ``ModelAdmin``.
"""

from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


def check_admin(app_configs=None, **kwargs):
    """Django's admin checks (its dependencies, every ModelAdmin) after importing the apps' admin modules.

    One check, not Django's two beside a discovering one: Django runs the registered checks
    in no set order, and both of its checks look at the admin sites the discovery fills.
    """
    admin.autodiscover()
    return [*check_dependencies(app_configs=app_configs, **kwargs), *check_admin_app(app_configs, **kwargs)]


class AdminConfig(SimpleAdminConfig):
    """``django.contrib.admin`` without the discovery at start-up (``SimpleAdminConfig``), checked in full."""

    def ready(self):
        checks.register(check_admin, checks.Tags.admin)
