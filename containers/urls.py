from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("hosts/", views.hosts, name="hosts"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/state/", views.jobs_state, name="jobs-state"),
    path("hosts/<int:pk>/probe/", views.probe_host, name="host-probe"),
]
