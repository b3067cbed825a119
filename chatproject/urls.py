from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from dashboard import views as dashboard_views
from exports import views as exports_views
from messaging import views as messaging_views
from threads import views as threads_views
from webhooks import views as webhooks_views

from . import api, health, views

api_urlpatterns = [
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up code as a script file: no inline script (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("threads.urls")),
    path("", include("messaging.urls")),
    path("", include("agent.urls")),
    path("", include("webhooks.urls")),
    path("", include("exports.urls")),
    path("", include("dashboard.urls")),
]

urlpatterns = [
    path("", threads_views.thread_list_page, name="home"),
    path("threads/new/", threads_views.thread_create_page, name="thread-create-page"),
    re_path(
        r"^threads/(?P<thread_id>[^/]+)/(?P<action>rename|archive|unarchive|delete|model|instructions)/$",
        threads_views.thread_action_page,
        name="thread-action-page",
    ),
    path("t/<str:thread_id>/", messaging_views.chat_page, name="chat-page"),
    path("settings/", threads_views.preferences_page, name="preferences-page"),
    path("webhooks/", webhooks_views.webhooks_page, name="webhooks-page"),
    path("t/<str:thread_id>/tree/", messaging_views.tree_page, name="tree-page"),
    path("import/", exports_views.import_page, name="import-page"),
    path("import/<str:job_id>/", exports_views.import_job_page, name="import-job-page"),
    path("dashboard/", dashboard_views.dashboard_page, name="dashboard-page"),
    # Every page that checks a password is throttled (chatproject.logins); these come first so
    # they shadow the same paths in the includes below.
    path("accounts/login/", views.login_throttled(auth_views.LoginView.as_view()), name="login"),
    path("admin/login/", views.login_throttled(admin.site.login)),
    path(
        "api-auth/login/",
        views.login_throttled(auth_views.LoginView.as_view(template_name="rest_framework/login.html")),
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("api-auth/", include("rest_framework.urls")),
    # Browsers ask for it on pages without an icon link (the admin's, DRF's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus scrapes it: staff, or a bearer METRICS_TOKEN (dashboard.views.metrics_allowed).
    path("metrics", dashboard_views.metrics, name="metrics"),
]

handler404 = views.not_found

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
