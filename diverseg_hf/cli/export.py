"""tmp"""
def register(sub):
    pass
