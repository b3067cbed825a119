from django.urls import path

from . import api

urlpatterns = [
    path("export/", api.ExportAllApi.as_view(), name="export-all"),
    path("export/threads/<str:thread_id>/", api.ExportThreadApi.as_view(), name="export-thread"),
    path("import/", api.ImportApi.as_view(), name="import"),
    path("import/jobs/", api.ImportJobListApi.as_view(), name="import-job-list"),
    path("import/jobs/<str:job_id>/", api.ImportJobApi.as_view(), name="import-job"),
]
