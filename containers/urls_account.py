from django.urls import path

from . import views_account

urlpatterns = [
    path("tokens/", views_account.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views_account.revoke_token, name="token-revoke"),
    path("audit/", views_account.audit_list, name="audit"),
]
