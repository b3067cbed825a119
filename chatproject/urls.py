from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from messaging import views as messaging_views
from threads import views as threads_views

from . import api, health, views

api_urlpatterns = [
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("threads.urls")),
    path("", include("messaging.urls")),
]

urlpatterns = [
    path("", threads_views.thread_list_page, name="home"),
    path("threads/new/", threads_views.thread_create_page, name="thread-create-page"),
    re_path(
        r"^threads/(?P<thread_id>[^/]+)/(?P<action>rename|archive|unarchive|delete)/$",
        threads_views.thread_action_page,
        name="thread-action-page",
    ),
    path("t/<str:thread_id>/", messaging_views.chat_page, name="chat-page"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

handler404 = views.not_found

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
