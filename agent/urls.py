from django.urls import path

from . import api

urlpatterns = [
    path("models/", api.ModelListApi.as_view(), name="model-list"),
]
