"""Imported by the batch grader's process-pool fork server: it dies with the coordinator, and warms up.

``multiprocessing``'s fork server can only preload modules by name; importing
this one runs in the server, so every worker forked from it starts warm.
"""

from .pool import die_with_parent, warm_up

die_with_parent()
warm_up()
