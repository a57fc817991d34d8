"""The desk in a browser: server-rendered pages over the same service functions as the API and the CLI."""
