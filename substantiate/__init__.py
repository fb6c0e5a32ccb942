"""The shells on top of ``evidence`` and ``ingest``: the command line and its jobs."""
