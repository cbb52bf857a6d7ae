from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from containers.transfer_views import transfer_view

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("containers.api.urls")),
    path("internal/transfers/<uuid:pk>/", transfer_view, name="internal-transfer"),  # workers only
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("containers.urls_account")),
    path("", include("containers.urls")),
]

# JSON errors under /api/ for requests no route matches; the usual pages elsewhere.
handler400 = "containers.api.errors.bad_request"
handler404 = "containers.api.errors.not_found"
handler500 = "containers.api.errors.server_error"
