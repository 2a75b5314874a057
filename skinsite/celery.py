"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skinsite.settings")

app = Celery("skinsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Beat's periodic jobs live apart from the analysis tasks they re-send (diagnosis/periodic_tasks.py).
app.autodiscover_tasks(related_name="periodic_tasks")
