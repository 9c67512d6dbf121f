"""Settings of the course's lab project: two apps and one SQLite file, nothing else."""
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
