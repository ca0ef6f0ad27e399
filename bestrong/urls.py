from django.contrib import admin
from django.urls import path

# The apps' admin modules, imported here rather than by every process (bestrong/apps.py).
admin.autodiscover()

# The project serves only the admin: no "View site" link to a page that does not exist.
admin.site.site_url = None
admin.site.site_header = "BeStrong SQL migrations (Django admin)"

urlpatterns = [
    path("admin/", admin.site.urls),
]
