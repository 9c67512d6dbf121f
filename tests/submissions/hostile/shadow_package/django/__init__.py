print('HOSTILE-REPORT {"shadow": "django imported"}')
VERSION = (9, 9)
