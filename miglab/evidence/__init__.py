"""What an assignment's notebook uses: ``check(...)`` and the tools of its test cells.

In a test cell::

    from miglab.evidence import check, valid_plan
    check(order_migrations, example, rule=valid_plan)

* :func:`check` (:mod:`~miglab.evidence.record`): collects the answer as plain
  JSON evidence for the grader and gives instant feedback where it can;
* public checkers (:mod:`~miglab.evidence.checkers`): rules a learner's
  kernel may run as well as the grader;
* generators (:mod:`~miglab.evidence.generate`): random inputs from a seeded
  ``random.Random`` for hidden tests (the seed lives in ``source/`` only);
* :class:`Call` and :class:`Verdict` (:mod:`~miglab.evidence.verdict`): what a
  rule in ``source/<assignment>/rules.py`` receives and returns.

Nothing here holds an assignment's inputs, answers or seeds.
"""

from .checkers import (
    choice,
    migration_pairs,
    names_cycle,
    returns_historical_model,
    runs_migration,
    squashes,
    valid_plan,
)
from .generate import random_column_ops, random_graph, random_schema_ops
from .record import EVIDENCE_MIME, check, setup
from .verdict import BadAnswer, Call, Verdict

__all__ = [
    "EVIDENCE_MIME",
    "BadAnswer",
    "Call",
    "Verdict",
    "check",
    "choice",
    "migration_pairs",
    "names_cycle",
    "random_column_ops",
    "random_graph",
    "random_schema_ops",
    "returns_historical_model",
    "runs_migration",
    "setup",
    "squashes",
    "valid_plan",
]
