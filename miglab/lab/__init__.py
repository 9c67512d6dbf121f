"""The lab: a real Django project on disk that lesson cells drive, and what shows it.

* :mod:`~miglab.lab.project`: :class:`Lab`, a scratch copy of the course's
  project (``manage``, ``tables``, ``columns``, ``rows``, ``applied``, ...);
* :mod:`~miglab.lab.runner`: runs ``python manage.py ...`` fast (a warm
  helper that forks one child per command);
* :mod:`~miglab.lab.display`: commands, files and tables as a notebook shows them;
* :mod:`~miglab.lab.graph`: the migration graph as data and as a picture;
* :mod:`~miglab.lab.quiz` and :mod:`~miglab.lab.practice`: quizzes and
  practice checks with instant feedback;
* :mod:`~miglab.lab.postgres`: the private PostgreSQL server PostgreSQL labs run on;
* :mod:`~miglab.lab.scenario`: a migration exercise run for real (files,
  rows, commands, what the database holds after each).

Nothing here imports the grading machinery.
"""

from .display import CommandResult, Source, Table
from .project import Lab, LabError

__all__ = ["CommandResult", "Lab", "LabError", "Source", "Table"]
