from django.urls import path

from . import views, views_containers, views_images, views_volumes

urlpatterns = [
    path("", views.home, name="home"),
    path("hosts/", views.hosts, name="hosts"),
    path("hosts/<int:pk>/probe/", views.probe_host, name="host-probe"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/download/", views.job_download, name="job-download"),
    path("jobs/state/", views.jobs_state, name="jobs-state"),
    path("containers/", views_containers.container_list, name="containers"),
    path("containers/new/", views_containers.container_create, name="container-create"),
    path("containers/state/", views_containers.container_states, name="containers-state"),
    path("containers/bulk/", views_containers.container_bulk, name="containers-bulk"),
    path("containers/<int:pk>/", views_containers.container_detail, name="container-detail"),
    path("containers/<int:pk>/logs/download/", views_containers.container_logs_download,
         name="container-logs-download"),
    path("containers/<int:pk>/<str:action>/", views_containers.container_action, name="container-action"),
    path("volumes/", views_volumes.volume_list, name="volumes"),
    path("volumes/new/", views_volumes.volume_create, name="volume-create"),
    path("volumes/<int:pk>/remove/", views_volumes.volume_remove, name="volume-remove"),
    path("images/", views_images.image_list, name="images"),
    path("images/rows/", views_images.image_rows, name="image-rows"),
    path("images/import/", views_images.image_import, name="image-import"),
    path("images/load/", views_images.image_load, name="image-load"),
    path("images/<int:pk>/", views_images.image_detail, name="image-detail"),
    path("images/<int:pk>/share/", views_images.image_share, name="image-share"),
    path("images/<int:pk>/<str:action>/", views_images.image_action, name="image-action"),
]
