"""Stories: what operators queue (drafts, files, checks, queueing), media, import and export,
posting slots."""
