from __future__ import annotations

from django.urls import re_path

from .views import app_view

urlpatterns = [re_path(r"^(?P<path>.*)$", app_view)]
