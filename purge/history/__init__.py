"""Run history: a write-ahead record of every real run, listing, and undo (issue 15).

`record` is the versioned record format, `store` keeps records in Azure Blob Storage or a local
folder, `journal` writes a run's record before its first delete and after its last, `restore`
puts deleted tags back, `azurite` starts the local storage emulator for the demo and tests.
"""
