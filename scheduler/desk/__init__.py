"""The desk: people, roles, approval, audit and notifications."""
