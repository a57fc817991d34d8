"""The desk's HTTP API (FastAPI): a face over the same service functions as the CLI."""
