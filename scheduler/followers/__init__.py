"""Follower counts: the sampling schedule, one sample and the daily roll-up, reports, charts."""
