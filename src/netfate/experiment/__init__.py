"""``netfate experiment``: the experiments the services declare (their contracts'
``experiments``), mounted by the CLI. Each lives in its service's folder.
"""
