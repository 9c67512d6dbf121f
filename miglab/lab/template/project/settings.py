"""Settings of the course's lab project: two apps and one database, nothing else.

The database is SQLite (``db.sqlite3`` beside manage.py) unless the lab that runs the
command says otherwise in the environment: ``MIGLAB_DB=postgresql`` with
``MIGLAB_PG_NAME``, ``MIGLAB_PG_HOST`` (the server's socket folder), ``MIGLAB_PG_PORT``,
``MIGLAB_PG_USER`` and ``MIGLAB_PG_PASSWORD`` (see miglab/lab/postgres.py).
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "lab-only-not-a-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []

# Only the course's own apps, so that every migration on screen is one we wrote.
INSTALLED_APPS = [
    "library",
    "loans",
]

if os.environ.get("MIGLAB_DB", "sqlite") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["MIGLAB_PG_NAME"],
            "HOST": os.environ["MIGLAB_PG_HOST"],  # a folder: a Unix socket, no TCP
            "PORT": os.environ.get("MIGLAB_PG_PORT", "5432"),
            "USER": os.environ.get("MIGLAB_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("MIGLAB_PG_PASSWORD", ""),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
