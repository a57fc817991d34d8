"""Feed ingest: the centre's websites turned into stories for the matrix."""
