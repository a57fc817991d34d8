"""The `crosspost` command: a face over the service functions, holding no logic."""
