from django.urls import path

from . import api

urlpatterns = [
    path("dashboard/", api.DashboardApi.as_view(), name="dashboard"),
    path("profiling/", api.ProfileListApi.as_view(), name="profile-list"),
    path("profiling/<str:profile_id>/", api.ProfileDetailApi.as_view(), name="profile-detail"),
    path("profiling/<str:profile_id>/data/", api.ProfileDataApi.as_view(), name="profile-data"),
]
