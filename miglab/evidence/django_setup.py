"""Django without a project: enough of it to build migration operations and model states."""

from __future__ import annotations

from typing import Any


def ensure_django() -> None:
    """Configure a settings-free Django (no apps, no database) once per process."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def historical_registry(models: dict[str, list[str]]) -> Any:
    """A registry of historical models, as a data migration's ``apps`` is.

    ``models`` maps ``"app_label.ModelName"`` to field names; every field is a
    ``CharField(max_length=200)`` next to the automatic ``id``.
    """
    ensure_django()
    from django.db import migrations
    from django.db import models as fields
    from django.db.migrations.state import ProjectState

    state = ProjectState()
    for label, names in sorted(models.items()):
        app, model = label.split(".", 1)
        columns = [("id", fields.BigAutoField(primary_key=True))]
        columns += [(name, fields.CharField(max_length=200)) for name in names]
        migrations.CreateModel(model, columns).state_forwards(app, state)
    return state.apps
