print('HOSTILE-REPORT {"shadow": "imported"}')
