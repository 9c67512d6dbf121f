load_subconfig("grader_config.py")
