"""`netfate demo`: the seeds' scenarios on an emulated edge, one command each."""
