"""Settings for skinsite, read from the environment (12-factor).

Development defaults need no external server: SQLite and Celery's filesystem
broker under ``var/``. Production (``DJANGO_ENV=production``) refuses to start
without ``SECRET_KEY`` and ``ALLOWED_HOSTS`` and expects ``DATABASE_URL``
(PostgreSQL) and ``REDIS_URL``, and ``MEDIA_ENCRYPTION_KEY`` for the photos.
Security settings (HTTPS, cookies, HSTS) are strict in production so that
``manage.py check --deploy --fail-level WARNING`` passes; see docs/SECURITY.md.
"""

import base64
import hashlib
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from ml.artifact import DEFAULT_MODEL_NAME

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
if PRODUCTION:
    try:
        SECRET_KEY = env("SECRET_KEY")
        ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"production needs SECRET_KEY and ALLOWED_HOSTS: {exc}") from exc
else:
    SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Origins (scheme://host[:port]) whose POSTs are trusted, e.g. https://skin.example.org behind a proxy.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS and cookies ------------------------------------------------------
# Behind a TLS-terminating proxy (deploy/nginx.conf) Django sees plain HTTP: trust the proxy's
# X-Forwarded-Proto only when told to, since a client could send that header itself otherwise.
if env.bool("SECURE_PROXY_SSL_HEADER", default=PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # photo and lesion URLs never leak to other sites
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only for ObtainAuthToken's log-in serializer (TokenView) and old keys' removal
    "knox",  # API tokens: hashed at rest, several per person, with an expiry (REST_KNOX below)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc files served locally: the docs page needs no CDN
    "auditlog",
    "axes",  # login lock-out after repeated failures
    "accounts",
    "diagnosis",
    "guidance",  # condition knowledge base and urgency triage
    "ops",  # /healthz, /metrics, worker readiness heartbeat
]

MIDDLEWARE = [
    "ops.middleware.OpsEndpointsMiddleware",  # /healthz and /metrics for probes; first: see its docstring
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body: refuse oversized requests from their Content-Length.
    "skinsite.middleware.RequestSizeLimitMiddleware",
    "skinsite.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication (it reads request.user on the way out): no caching of health data.
    "skinsite.middleware.PrivateResponsesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",  # before axes, so it counts axes' 429s
    "skinsite.middleware.RetryAfterMiddleware",  # outside axes: its lock-out 429 gets a Retry-After
    "axes.middleware.AxesMiddleware",  # turns a lock-out into a 429 page (keep it last)
]

ROOT_URLCONF = "skinsite.urls"
WSGI_APPLICATION = "skinsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "diagnosis.context_processors.reminders",  # the "time for a new photo" banner
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to the same file: wait instead of failing on a lock.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The per-address limit first (accounts/backends.py: too many failed log-ins from one address, over
# any usernames), then axes: it refuses a locked-out username+address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.AddressLimitBackend",
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
# The pair, not the username alone: a stranger cannot lock a user out by guessing at their name.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"  # the site's page, with the wait and a reset link
AXES_RESET_ON_SUCCESS = True
# Successful log-ins are in the audit log already (accounts/audit.py); no second store of addresses.
AXES_DISABLE_ACCESS_LOG = True
# Proxies in front of Django (deploy/nginx.conf is one). Without this, every client would share the
# proxy's address and the lock-out would become per username: anyone could lock anyone out.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if PRODUCTION else 0)
# ... and the peers that are those proxies: X-Forwarded-For is believed only from them, so a client
# that reaches gunicorn directly cannot pick its own address (skinsite/client_ip.py). The default
# is loopback and the private ranges (nginx on the same host or in the compose network).
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                                                          "192.168.0.0/16", "fc00::/7"])
TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(value, strict=False) for value in TRUSTED_PROXY_IPS]
AXES_CLIENT_IP_CALLABLE = "skinsite.client_ip.client_ip"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "diagnosis:lesion-list"
LOGOUT_REDIRECT_URL = "diagnosis:home"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded photos live under MEDIA_ROOT but there is deliberately no public
# media URL (no MEDIA_URL route in any setting): photos are only ever served by
# a view that checks the owner. They are stored encrypted (diagnosis/storage.py).
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Submission.image. Any backend works behind diagnosis.storage.EncryptedStorageMixin (S3: see README).
    "photos": {"BACKEND": env("PHOTO_STORAGE_BACKEND", default="diagnosis.storage.EncryptedFileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}


def _development_media_key(secret_key):
    # Stable across restarts of a development install, never used in production.
    return base64.urlsafe_b64encode(hashlib.sha256(b"skinsite-media-key|" + secret_key.encode()).digest()).decode()


# A Fernet key (`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
# Rotation: put the new key in MEDIA_ENCRYPTION_KEY, the old one in MEDIA_ENCRYPTION_OLD_KEYS, run
# `manage.py rotate_media_key`, then drop the old key.
if PRODUCTION:
    try:
        MEDIA_ENCRYPTION_KEY = env("MEDIA_ENCRYPTION_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"production needs MEDIA_ENCRYPTION_KEY to encrypt photos: {exc}") from exc
else:
    MEDIA_ENCRYPTION_KEY = env("MEDIA_ENCRYPTION_KEY", default=_development_media_key(SECRET_KEY))
MEDIA_ENCRYPTION_KEYS = [MEDIA_ENCRYPTION_KEY, *env.list("MEDIA_ENCRYPTION_OLD_KEYS", default=[])]
for _key in MEDIA_ENCRYPTION_KEYS:
    try:
        if len(base64.urlsafe_b64decode(_key.encode())) != 32:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured("MEDIA_ENCRYPTION_KEY(S) must be Fernet keys: 32 bytes, url-safe base64") from None

# Upload limits, at three layers: the proxy (deploy/nginx.conf client_max_body_size = MAX_REQUEST_BYTES),
# RequestSizeLimitMiddleware (MAX_REQUEST_BYTES, from Content-Length, before the body is read), and the
# form/serializer (MAX_UPLOAD_BYTES for the photo itself, MAX_IMAGE_PIXELS from the image header).
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=MAX_UPLOAD_BYTES + 1024 * 1024)  # + form fields
# Decoding limits (diagnosis/images.py, issue 13 M1). JPEG decodes at 1/2-1/8 scale to at most
# STORED_IMAGE_MAX_SIDE, so the declared limit only has to pass the largest phone photo: 200-MP
# sensors write 16320×12240 JPEGs. PNG, WebP and HEIC decode at full size: MAX_DECODE_MB (what one
# upload may cost) caps PNG and HEIC at 40 MP (phones save 12- and 24-MP HEIC by default; iOS
# Safari sends a 48-MP "HEIF Max" photo as JPEG), WebP, which no phone camera writes, at 25 MP, and
# progressive JPEGs (phone cameras write baseline ones; their decoder buffers the whole image) at 62 MP.
# DECODE_BUDGET_MB bounds all decodes of one web process at once (two 12-MP photos); an upload
# waits DECODE_WAIT_SECONDS for room, then is asked to try again.
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=210_000_000)
MAX_DECODE_MB = env.int("MAX_DECODE_MB", default=420)
DECODE_BUDGET_MB = env.int("DECODE_BUDGET_MB", default=250)
DECODE_WAIT_SECONDS = env.float("DECODE_WAIT_SECONDS", default=20.0)
STORED_IMAGE_MAX_SIDE = env.int("STORED_IMAGE_MAX_SIDE", default=4096)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # bigger files are streamed to a temporary file
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # the non-file part of a request body
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
# Photos in one bulk upload (POST /api/v1/batches/); the request as a whole stays under MAX_REQUEST_BYTES.
BULK_MAX_FILES = env.int("BULK_MAX_FILES", default=100)
# Django's own default (100); the other upload endpoints read one file and ignore any others.
DATA_UPLOAD_MAX_NUMBER_FILES = max(5, BULK_MAX_FILES)

# --- Consent and retention -------------------------------------------------
# Raise the version when the consent text changes in substance: everyone is asked again before uploading.
CONSENT_VERSION = env.int("CONSENT_VERSION", default=1)
# Photos (and their results) older than this many days are deleted by `manage.py purge_expired`; 0 = keep.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="skinsite@localhost")
# The SMTP server for the smtp backend (sign-up links and password resets need real mail in production).
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # a hung mail server must not hang a sign-up
# Absolute links in e-mails sent outside a request (the re-photograph reminders).
SITE_URL = env("SITE_URL", default="http://localhost:8000").rstrip("/")

# The triage's urgent threshold for a model whose metadata has none (guidance/selectors.py); the shipped
# model carries its own, chosen on validation (docs/MODEL_CARD.md, "Urgency threshold").
MALIGNANCY_THRESHOLD = env.float("MALIGNANCY_THRESHOLD", default=0.15)

# --- Lesion timeline and reminders (diagnosis/timeline.py, diagnosis/reminders.py) ---
# A photo is "changed" when its malignancy sum rose by more than this since the previous one ...
LESION_CHANGE_MALIGNANCY_MARGIN = env.float("LESION_CHANGE_MALIGNANCY_MARGIN", default=0.10)
# ... or its embedding moved further than this (cosine distance; measured by bench/embedding_drift.py).
LESION_CHANGE_EMBEDDING_THRESHOLD = env.float("LESION_CHANGE_EMBEDDING_THRESHOLD", default=0.53)
# Days after an analysis to ask for a new photo of the spot, by the result's urgency tier.
REMINDER_DAYS = {tier: env.int(f"REMINDER_DAYS_{tier.upper()}", default=days)
                 for tier, days in {"urgent": 14, "soon": 30, "routine": 90, "self_care": 30}.items()}

# --- Classifier -----------------------------------------------------------
ML_ARTIFACTS_DIR = BASE_DIR / "ml" / "artifacts"
ML_MODEL_NAME = env("ML_MODEL_NAME", default=DEFAULT_MODEL_NAME)
ML_MODEL_DIR = Path(env("ML_MODEL_DIR", default=str(ML_ARTIFACTS_DIR / ML_MODEL_NAME)))
# Engine: "auto" = the artifact's serving choice (LiteRT when within 0.5 pt of Keras), or keras/litert.
ML_RUNTIME = env("ML_RUNTIME", default="auto")
# Inference threads per worker process: N prefork processes x 1 thread serve most photos per
# second on a small machine (docs/PERFORMANCE.md).
ML_THREADS = env.int("ML_THREADS", default=1)
# Photos per model call when many are classified together (bulk import: diagnosis/bulk.py).
ML_BATCH_SIZE = env.int("ML_BATCH_SIZE", default=32)
# Store a "where the model looked" heatmap with each analysis (ml/explain.py: 50 extra forward
# passes per photo, batched: about 9x the prediction's own time); off = predictions and embedding only.
ML_HEATMAPS = env.bool("ML_HEATMAPS", default=True)

# --- Cache (API throttling; axes keeps its records in the database) ------
# Shared Redis in production, so every web process counts the same requests.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    # A Redis outage makes the cache miss (rates not counted) rather than fail uploads: skinsite/cache.py.
    CACHES = {"default": {"BACKEND": "skinsite.cache.FailOpenRedisCache",
                          "LOCATION": env("CACHE_URL", default=REDIS_URL), "KEY_PREFIX": "skinsite",
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded default: a broker that needs no server, shared through a folder.
    BROKER_DIR = Path(env("CELERY_BROKER_DIR", default=str(BASE_DIR / "var" / "broker")))
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task, so a slow task is not redelivered while it still runs; a task whose
        # worker was killed outright (not just its pool child) comes back after this many seconds.
        "visibility_timeout": env.int("BROKER_VISIBILITY_TIMEOUT", default=3600),
        # A Redis that is down or hung must not hang an upload: fail fast, the outbox re-sends later.
        "socket_connect_timeout": 2,
        "socket_timeout": 3,  # above kombu's 1 s BRPOP timeout
    }
# One quick retry (a pooled connection may be stale after a Redis restart), then give up: the
# submission stays queued with enqueued_at empty and `dispatch_pending` sends it when the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# An upload waits at most this long for the broker to accept its task; after a refusal, uploads skip
# the broker for BROKER_BREAKER_SECONDS (diagnosis/publish.py) and the cache skips Redis as long.
BROKER_PUBLISH_TIMEOUT = env.float("BROKER_PUBLISH_TIMEOUT", default=0.5)
BROKER_BREAKER_SECONDS = env.float("BROKER_BREAKER_SECONDS", default=15.0)
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, not the broker
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task gets the task redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A prefork child loads TensorFlow and the model before it reports "up" (worker_process_init); Celery's
# default 4 s wait killed each replacement of a crashed child, over and over, on a busy machine.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=120.0)
# A task running when the broker connection drops cannot be acknowledged and will be delivered again:
# stop it rather than finish it twice (Celery 6's default; the analysis is idempotent either way).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Tasks that need the model go to their own queue, consumed by workers that load it
# (`celery -A skinsite worker -Q inference`); anything else (periodic jobs) stays on "celery".
CELERY_INFERENCE_QUEUE = env("CELERY_INFERENCE_QUEUE", default="inference")
CELERY_TASK_ROUTES = {"diagnosis.analyse*": {"queue": CELERY_INFERENCE_QUEUE}}

# --- Health and metrics (ops/) ----------------------------------------------
# Each worker process refreshes its heartbeat this often; /healthz wants one younger than the max age.
HEALTH_HEARTBEAT_SECONDS = env.float("HEALTH_HEARTBEAT_SECONDS", default=30.0)
HEALTH_WORKER_MAX_AGE = env.int("HEALTH_WORKER_MAX_AGE", default=90)
# /metrics answers these client addresses (CIDR allowed) or a request with "Authorization: Bearer METRICS_TOKEN".
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network(value, strict=False) for value in METRICS_ALLOWED_IPS]
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Periodic tasks, sent by `celery -A skinsite beat` (one beat process per site).
CELERY_BEAT_SCHEDULE = {
    # Re-photograph reminders that fell due (idempotent: each is e-mailed once).
    "send-lesion-reminders": {"task": "diagnosis.send_due_reminders", "schedule": 3600.0},
    # Outbox and sweeper (diagnosis/recovery.py); expiring, so they never pile up while no worker runs.
    "dispatch-pending-analyses": {"task": "diagnosis.dispatch_pending", "schedule": 30.0, "options": {"expires": 25}},
    "requeue-stuck-analyses": {"task": "diagnosis.requeue_stuck", "schedule": 60.0, "options": {"expires": 55}},
}
# Queued submissions the broker never accepted are sent again after this grace period; accepted ones
# that no worker started (broker state lost, e.g. a Redis restart without persistence) after the second.
ANALYSIS_DISPATCH_GRACE = timedelta(seconds=env.int("ANALYSIS_DISPATCH_GRACE_SECONDS", default=20))
ANALYSIS_REDISPATCH_AFTER = timedelta(seconds=env.int("ANALYSIS_REDISPATCH_AFTER_SECONDS", default=300))
# An analysis still 'processing' after this is presumed lost and re-queued, up to ANALYSIS_MAX_ATTEMPTS
# starts in all; then it is marked failed with the reason (the photo is kept; `requeue_failed` retries it).
ANALYSIS_STUCK_AFTER = timedelta(seconds=env.int("ANALYSIS_STUCK_AFTER_SECONDS", default=600))
ANALYSIS_MAX_ATTEMPTS = env.int("ANALYSIS_MAX_ATTEMPTS", default=3)

# --- API ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: unauthenticated API calls get 401 with a WWW-Authenticate challenge.
        "accounts.authentication.AuditedTokenAuthentication",  # knox tokens, named as the audit actor
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, held to DATA_UPLOAD_MAX_MEMORY_SIZE like Django's forms (413 above); anything else is 415.
    # The photo uploads take multipart and the token endpoint also takes a form (their parser_classes).
    # One media type per body is also what the schema then offers, so a generated client sends JSON.
    "DEFAULT_PARSER_CLASSES": ["skinsite.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [  # DRF's, keyed on skinsite.client_ip instead of the raw X-Forwarded-For
        "skinsite.throttling.AnonRateThrottle",
        "skinsite.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", default="60/minute"),  # per address: token requests and 401s
        "user": env("THROTTLE_USER", default="1200/hour"),
        "uploads": env("THROTTLE_UPLOADS", default="60/hour"),  # photo uploads per user (diagnosis.api)
        "batch_photos": env("THROTTLE_BATCH_PHOTOS", default="500/hour"),  # photos in bulk uploads, per user
        # Accounts (accounts/limits.py), per client address: failed log-ins over any usernames (password
        # spraying; axes counts per username+address), reset requests, sign-ups; and mails per recipient.
        "login_failures": env("THROTTLE_LOGIN_FAILURES", default="20/hour"),
        "password_reset": env("THROTTLE_PASSWORD_RESET", default="10/hour"),
        "signup": env("THROTTLE_SIGNUP", default="10/hour"),
        "account_mail": env("THROTTLE_ACCOUNT_MAIL", default="3/hour"),  # reset + sign-up mails to one address
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
# API tokens (django-rest-knox): "Authorization: Token <key>", as with DRF's tokens. Only a hash is
# stored; each expires API_TOKEN_TTL_HOURS after it was issued and all of a person's tokens are revoked
# when their password is changed or reset (accounts/models.py). Each log-in through /api/v1/auth/token/
# issues a new one; past API_TOKENS_PER_USER the oldest is revoked (accounts/services.py).
API_TOKEN_TTL = timedelta(hours=env.int("API_TOKEN_TTL_HOURS", default=30 * 24))
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=10)
REST_KNOX = {"TOKEN_TTL": API_TOKEN_TTL, "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}
SPECTACULAR_SETTINGS = {
    "TITLE": "Skin spot triage API",
    "DESCRIPTION": "Upload photos of skin spots and read ranked, calibrated predictions. Not a diagnosis.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1: a nullable reference (a submission's guidance while queued) is oneOf [$ref, null]; in 3.0.3
    # "allOf: [$ref], nullable: true" does not admit null, and generated clients refused the answer.
    "OAS_VERSION": "3.1.0",
    # One media type per request body: JSON, unless a view names another (the photo uploads: multipart).
    # With several, clients generated by openapi-python-client did not import, or sent multipart
    # labelled JSON. The token endpoint also takes a form (curl -d), as its description says.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Lesion.body_site and Submission.anatomic_site share one choice set: one enum in the schema.
    "ENUM_NAME_OVERRIDES": {"BodySiteEnum": "diagnosis.choices.BodySite", "ResultStateEnum": "guidance.triage.STATES"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "diagnosis.api.schema.null_as_type",  # DRF's pagination schema, written the OAS 3.1 way
        "diagnosis.api.schema.add_error_responses",  # every 4xx the API answers, with its body
    ],
}

AUDITLOG_INCLUDE_ALL_MODELS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
