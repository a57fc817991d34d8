"""The account matrix: accounts, their credentials' identity, token refresh."""
