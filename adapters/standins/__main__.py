"""``python -m adapters.standins PLATFORM [--port N]``: run one stand-in in the foreground."""

from __future__ import annotations

import argparse

from adapters.standins import standin_class
from adapters.standins.base import serve

parser = argparse.ArgumentParser(prog="python -m adapters.standins")
parser.add_argument("platform")
parser.add_argument("--port", type=int, default=0)
args = parser.parse_args()
serve(standin_class(args.platform)(port=args.port))
