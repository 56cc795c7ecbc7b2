"""Network functions that run inside instance namespaces.

Kept light on imports: an instance's start time is the interpreter's start time
plus what this package pulls in.
"""
