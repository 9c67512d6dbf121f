"""Where public checkers run code: in a learner's kernel, with the lab's own runner.

A checker that needs to run the answer (``runs_migration`` runs a migration
file with real ``migrate``) asks ``call.context.run_scenario(scenario,
answer)``. The grader passes its own context, which runs the same scenario
in a sandbox; here, in the learner's kernel, the lab's fast runner runs it
(the learner's own code, with the learner's own rights). Each scenario runs
once per answer text.
"""

from __future__ import annotations

from typing import Any

from .convert import digest


class LabContext:
    """Runs scenarios with :func:`miglab.lab.scenario.run_scenario` and the lab's runner, cached."""

    _cache: dict[tuple[str, str], dict[str, Any]] = {}

    def run_scenario(self, scenario: dict[str, Any], answer: str) -> dict[str, Any]:
        from ..lab.scenario import Scenario, run_scenario

        key = (digest(scenario), digest(answer))
        if key not in self._cache:
            self._cache[key] = run_scenario(Scenario.from_dict(scenario), answer)
        return self._cache[key]

    def saw_hidden(self) -> None:
        """Nothing to remember in a learner's kernel: it never holds hidden tests."""
