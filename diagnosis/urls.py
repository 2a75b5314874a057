from django.urls import path

from . import lesion_views, views

app_name = "diagnosis"

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("submissions/<uuid:submission_uuid>/", views.submission_detail, name="submission-detail"),
    path("submissions/<uuid:submission_uuid>/status/", views.submission_status, name="submission-status"),
    path("submissions/<uuid:submission_uuid>/photo/", views.submission_photo, name="submission-photo"),
    path("submissions/<uuid:submission_uuid>/heatmap/", views.submission_heatmap, name="submission-heatmap"),
    path("submissions/<uuid:submission_uuid>/look-anyway/", views.submission_look_anyway,
         name="submission-look-anyway"),
    path("submissions/<uuid:submission_uuid>/delete/", views.submission_delete, name="submission-delete"),
    path("lesions/", views.lesion_list, name="lesion-list"),
    path("lesions/<uuid:lesion_uuid>/", views.lesion_detail, name="lesion-detail"),
    path("lesions/<uuid:lesion_uuid>/delete/", views.lesion_delete, name="lesion-delete"),
    path("lesions/<uuid:lesion_uuid>/compare/", lesion_views.lesion_compare, name="lesion-compare"),
    path("lesions/<uuid:lesion_uuid>/report/", lesion_views.lesion_report, name="lesion-report"),
    path("lesions/<uuid:lesion_uuid>/report.pdf", lesion_views.lesion_report_pdf, name="lesion-report-pdf"),
]
