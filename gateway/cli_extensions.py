"""Sub-commands that other stages add to `care-gateway` (each a `register(subparsers)` function)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

EXTENSIONS: list[Register] = []
