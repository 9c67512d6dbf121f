load_subconfig("grader_config.py")  # noqa: F821  (nbgrader's only auto-loaded file; the settings live there)
