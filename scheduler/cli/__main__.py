"""`python -m scheduler.cli`: the same as the `crosspost` command."""

from scheduler.cli.main import main

main()
