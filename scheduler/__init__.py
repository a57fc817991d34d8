"""crosspost's scheduler: stored matrix, delivery state machine, Celery tasks and the CLI."""
