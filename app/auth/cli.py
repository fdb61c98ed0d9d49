"""`python -m app keys ...`: make API keys. The secret is printed once and stored nowhere; the
keys file gets only its hash."""

from __future__ import annotations

import argparse
import sys

from app.auth.keys import KEYS_FILE_ENV, new_key
from app.auth.principal import SCOPES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app keys",
        description="Manage streamchat API keys. The service keeps only their SHA-256 hashes, "
        f"read from the keys file ({KEYS_FILE_ENV}).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    new = commands.add_parser(
        "new", help="make a new key: print it once, and the line for the keys file",
        description="Make a new API key. It is printed once: hand it to its owner, and add "
        "the printed line (which holds only its hash) to the keys file.")
    new.add_argument("--id", dest="key_id", required=True, metavar="ID",
                     help="the key's id: it owns the sessions made with the key, and shows in logs")
    new.add_argument("--scopes", default="chat",
                     help=f"scopes joined with '+' or ',': {', '.join(SCOPES)} (default: chat; "
                     "admin does not include chat)")
    return parser


def main(argv: list[str]) -> int:
    """Run `keys` with its arguments (after `keys`); the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has printed it
        return exc.code if isinstance(exc.code, int) else 2
    if args.command != "new":
        parser.print_help(sys.stderr)
        return 2
    try:
        secret, line = new_key(args.key_id, args.scopes)
    except ValueError as exc:
        print(f"python -m app keys new: {exc}", file=sys.stderr)
        return 2
    print(f"New API key {args.key_id!r}. It is shown only this once; give it to its owner:\n"
          f"\n    {secret}\n\n"
          f"Add this line to the keys file ({KEYS_FILE_ENV}) and restart the service:\n"
          f"\n    {line}\n")
    return 0
