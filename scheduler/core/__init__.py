"""The delivery core: models, database, the state machine, claim, lease and heartbeat, reap, rate
gates, the retry policy, one publish attempt, credentials at rest."""
