from django.db import models  # noqa: F401  (models are written by the lessons)
