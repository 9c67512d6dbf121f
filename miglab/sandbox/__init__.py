"""Where students' code runs: bubblewrap sandboxes, owned by the grader.

* :mod:`~miglab.sandbox.bwrap`: what a sandbox sees and may do (its own uid,
  no network, a read-only system, private tmpfs, rlimits), :func:`available`,
  and :func:`run` for one command;
* :mod:`~miglab.sandbox.session`: one sandbox serving many ``manage.py``
  commands (the judge's re-runs of students' migrations);
* :mod:`~miglab.sandbox.server`: the hardened command server inside it;
* :mod:`~miglab.sandbox.kernel`: Jupyter kernels that start inside a sandbox.

``python -m miglab.sandbox`` says whether isolation works on this machine.
"""

from .bwrap import DEFAULT_LIMITS, SandboxError, SandboxLimits, available, describe, require

__all__ = ["DEFAULT_LIMITS", "SandboxError", "SandboxLimits", "available", "describe", "require"]
