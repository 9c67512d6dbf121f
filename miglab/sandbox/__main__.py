"""``python -m miglab.sandbox``: print whether student code can be isolated here (exit 1 if not)."""

import json
import sys

from .bwrap import available

ok, why = available()
print(json.dumps({"available": ok, "reason": why}))
sys.exit(0 if ok else 1)
