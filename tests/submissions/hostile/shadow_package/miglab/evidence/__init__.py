print('HOSTILE-REPORT {"shadow": "imported"}')
def check(*a, **k):
    print('all checks passed')
def setup(*a, **k):
    pass
