"""Replaying migration operations with Django, as the squash checks need it.

Two lists of operations that end in the same :class:`ProjectState` describe
the same schema. They can still lose different data: a ``RenameField`` keeps
a column's rows where ``RemoveField`` + ``AddField`` drops them, which
:func:`lineage` tells apart.
"""

from __future__ import annotations

import copy
from typing import Any


def project_state(operations: list[Any], app: str) -> Any:
    """The state after replaying ``operations`` (copies of them) on an empty project."""
    from django.db.migrations.state import ProjectState

    state = ProjectState()
    for op in copy.deepcopy(operations):
        op.state_forwards(app, state)
    return state


def optimized_length(operations: list[Any], app: str) -> int:
    """How many operations Django's own optimizer reduces ``operations`` to."""
    from django.db.migrations.optimizer import MigrationOptimizer

    return len(MigrationOptimizer().optimize(copy.deepcopy(operations), app))


def lineage(existing: list[Any], operations: list[Any], app: str) -> dict[str, dict[str, str]]:
    """Where each final column's data comes from: ``"model.column"`` of an existing model, or ``"new"``.

    ``existing`` builds the models that hold rows before ``operations`` run.
    Raises ValueError when an operation does not apply (an unknown model or
    field, a name already taken).
    """
    from django.db import migrations

    models: dict[str, dict[str, str]] = {}
    for op in existing:
        if isinstance(op, migrations.CreateModel):
            models[op.name_lower] = {name: f"{op.name_lower}.{name}" for name, _ in op.fields}
    for op in operations:
        _apply(models, op)
    return models


def _apply(models: dict[str, dict[str, str]], op: Any) -> None:
    from django.db import migrations

    if isinstance(op, migrations.CreateModel):
        if op.name_lower in models:
            raise ValueError(f"CreateModel {op.name}: the model already exists")
        models[op.name_lower] = {name: "new" for name, _ in op.fields}
        return
    if isinstance(op, migrations.DeleteModel):
        if models.pop(op.name_lower, None) is None:
            raise ValueError(f"DeleteModel {op.name}: there is no such model")
        return
    model = models.get(getattr(op, "model_name_lower", ""))
    if model is None:
        raise ValueError(f"{type(op).__name__} on {getattr(op, 'model_name', '?')}: there is no such model")
    _apply_to_field(model, op)


def _apply_to_field(model: dict[str, str], op: Any) -> None:
    from django.db import migrations

    if isinstance(op, migrations.AddField):
        if op.name in model:
            raise ValueError(f"AddField {op.model_name}.{op.name}: the field already exists")
        model[op.name] = "new"
    elif isinstance(op, migrations.RemoveField):
        if model.pop(op.name, None) is None:
            raise ValueError(f"RemoveField {op.model_name}.{op.name}: there is no such field")
    elif isinstance(op, migrations.AlterField):
        if op.name not in model:
            raise ValueError(f"AlterField {op.model_name}.{op.name}: there is no such field")
    elif isinstance(op, migrations.RenameField):
        if op.old_name not in model or op.new_name in model:
            raise ValueError(f"RenameField {op.model_name}.{op.old_name}: cannot rename")
        model[op.new_name] = model.pop(op.old_name)
    else:
        raise ValueError(f"{type(op).__name__} is not one of the operations this exercise uses")
