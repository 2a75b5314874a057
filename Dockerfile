# One image for every role: web (gunicorn), worker (Celery, loads the model), beat, migrate.
# docker-compose.yml picks the role with `command`; docs/DEPLOY.md explains the settings.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=skinsite.settings

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files are collected into the image (whitenoise serves them; nginx may too). The
# settings need no secret for this, and production settings are not loaded at build time.
RUN DJANGO_ENV=development python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 --home-dir /app skinsite \
    && mkdir -p /data/media /data/beat \
    && chown -R skinsite /data

# Never root: a compromised process cannot write the code or the model.
USER skinsite

EXPOSE 8000
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "skinsite.wsgi"]
