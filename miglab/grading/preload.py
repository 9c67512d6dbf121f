"""Imported by the batch grader's process-pool fork server: warms what every worker needs.

``multiprocessing``'s fork server can only preload modules by name; importing
this one runs :func:`miglab.grading.worker.warm_up` once in the server, so the
workers forked from it start with it done.
"""

from .worker import warm_up

warm_up()
