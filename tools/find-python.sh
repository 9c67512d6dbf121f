#!/bin/sh
# Print the path of a Python >= 3.12 interpreter, or explain how to get one.
# Looks at $PYTHON, then python3.13/3.12/python3/python on PATH, then pyenv installs.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
for c in "${PYTHON:-}" python3.14 python3.13 python3.12 python3 python; do
  [ -n "$c" ] || continue
  p=$(command -v "$c" 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
root=${PYENV_ROOT:-$HOME/.pyenv}
for p in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
  if ok "$p"; then echo "$p"; exit 0; fi
done
echo "error: this course needs Python 3.12 or newer (Django 6 requires it)." >&2
echo "  Install one (python.org, your package manager, or 'pyenv install 3.12')," >&2
echo "  or point to it: make lab PYTHON=/path/to/python3.12" >&2
exit 1
