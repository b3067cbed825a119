from django.urls import path

from . import api

urlpatterns = [
    path("dashboard/", api.DashboardApi.as_view(), name="dashboard"),
]
