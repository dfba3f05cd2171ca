"""A local registry that answers like Azure Container Registry's data plane, over HTTPS.

For tests, development and `python -m purge demo`; never deployed. Shares no code with `purge/`.
"""
