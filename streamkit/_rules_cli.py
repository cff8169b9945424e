"""``streamkit rules list|add|delete``: the X API v2 filtered stream's rules from a terminal.

The bearer token comes only from ``$STREAMKIT_BEARER_TOKEN`` (never an option: a command line
is visible to other users in ``ps``). The rules go to stdout (a table, or JSON with
``--json``); what happened goes to stderr.

Examples
--------
>>> import os
>>> from streamkit.cli import main
>>> from streamkit.testing import XV2Server
>>> with XV2Server() as server:
...     os.environ["STREAMKIT_BEARER_TOKEN"] = server.bearer_token
...     code = main(["rules", "add", "python OR #rstats", "--tag", "code", "--base-url", server.url])
...     listed = main(["rules", "list", "--base-url", server.url])
...     del os.environ["STREAMKIT_BEARER_TOKEN"]  # doctest: +ELLIPSIS
id ...  tag   value
...  code  python OR #rstats
id ...  tag   value
...  code  python OR #rstats
>>> code, listed
(0, 0)
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from ._exceptions import ConfigError
from .sources.x_v2 import BEARER_ENV, DEFAULT_API_URL

__all__ = ["add_rules_command", "format_rules"]


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def format_rules(rules: Sequence[Any]) -> str:
    """Rules as an aligned ``id  tag  value`` table.

    Examples
    --------
    >>> from streamkit import StreamRule
    >>> print(format_rules([StreamRule("cat has:images", "cats", "1273026480692322304")]))
    id                   tag   value
    1273026480692322304  cats  cat has:images
    """
    rows = [("id", "tag", "value")] + [(str(r.id or "-"), r.tag or "-", r.value or "") for r in rules]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows)


def _client(args: argparse.Namespace) -> Any:
    from .x_client import StreamingClient

    try:
        return StreamingClient(None, base_url=args.base_url or DEFAULT_API_URL)
    except ConfigError as exc:
        if BEARER_ENV in str(exc):
            raise ConfigError(f"missing credentials: set {BEARER_ENV} in the environment to your X app's "
                              "Bearer Token. The command reads it only from there, never from options.") from None
        raise


def _print_rules(rules: Sequence[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"id": r.id, "value": r.value, "tag": r.tag} for r in rules], indent=2, ensure_ascii=False))
    elif rules:
        print(format_rules(rules))


def _run(args: argparse.Namespace) -> int:
    if not getattr(args, "action", None):
        raise ConfigError("say what to do: `streamkit rules list`, `streamkit rules add VALUE` or "
                          "`streamkit rules delete ID...` (see `streamkit rules --help`)")
    client = _client(args)
    try:
        if args.action == "list":
            rules = client.get_rules().data
            _print_rules(rules, args.json)
            _err(f"streamkit rules: {len(rules)} rule{'s' * (len(rules) != 1)} on {client.base_url}")
        elif args.action == "add":
            done = client.add_rules([_rule(v, args.tag) for v in args.values], dry_run=args.dry_run)
            _print_rules(done.data, args.json)
            for e in done.errors:
                _err(f"streamkit rules: {e.get('value')!r} already exists (id {e.get('id')}); left as it is")
            verb = "would be added (dry run: nothing changed)" if args.dry_run else "added"
            _err(f"streamkit rules: {len(done.data)} rule{'s' * (len(done.data) != 1)} {verb}")
        else:
            if args.all:
                if args.ids or args.values:
                    raise ConfigError("use either --all or rule ids/--value, not both")
                done = client.delete_all_rules(dry_run=args.dry_run)
                _print_rules(done.data, args.json)
                n = len(done.data)
            else:
                if not (args.ids or args.values):
                    raise ConfigError("say which rules to delete: their ids (see `streamkit rules list`), "
                                      "--value VALUE, or --all")
                done = client.delete_rules(list(args.ids), values=args.values or None, dry_run=args.dry_run)
                n = done.meta.get("summary", {}).get("deleted", 0)
            verb = "would be deleted (dry run: nothing changed)" if args.dry_run else "deleted"
            _err(f"streamkit rules: {n} rule{'s' * (n != 1)} {verb}")
    finally:
        client.close()
    return 0


def _rule(value: str, tag: str | None) -> Any:
    from .x_client import StreamRule

    return StreamRule(value, tag or None)


def add_rules_command(command: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``rules`` to the ``streamkit`` parser; ``command`` is cli's subcommand factory."""
    r = command("rules", _run, "List, add or delete the X API v2 filtered stream's rules.",
                "Manage the rules of the X API v2 filtered stream (what `streamkit collect --source x-v2` "
                f"captures): list them, add one with an optional tag, delete by id or value or all. The bearer "
                f"token comes only from {BEARER_ENV}. Rules go to stdout (a table, or --json), status to stderr.",
                "Examples:\n"
                "  streamkit rules add 'climate (cop30 OR #cop30) lang:en' --tag climate\n"
                "  streamkit rules list --json\n"
                "  streamkit rules delete 1273026480692322304\n"
                "  streamkit rules delete --all")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", metavar="URL",
                        help="X API server (default https://api.x.com); http:// only for a local test server.")
    common.add_argument("--json", action="store_true", help="Print the rules as JSON instead of a table.")
    actions = r.add_subparsers(dest="action", metavar="ACTION", title="actions",
                               help="What to do with the rules: list, add or delete.")

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common], help=help, description=textwrap.fill(description, 88))

    action("list", "Print the rules: id, tag and value.", "Print the app's filtered-stream rules.")
    a = action("add", "Add a rule (or several), with an optional tag.",
               "Add rules to the filtered stream; a rule that already exists is left as it is. X checks the "
               "syntax: an invalid rule is refused with X's reason (exit status 2). A rule that starts with '-' goes "
               "after '--': streamkit rules add -- '-is:retweet cat'.")
    a.add_argument("values", nargs="+", metavar="VALUE", help="The rule, e.g. 'cat has:images -is:retweet'.")
    a.add_argument("--tag", metavar="TAG", help="A label for the rule, stored in each matching post's matching_rules.")
    a.add_argument("--dry-run", action="store_true", help="Only check the rule with X; add nothing.")
    d = action("delete", "Delete rules by id or value, or all of them.",
               "Delete filtered-stream rules by id (from `streamkit rules list`), by --value, or --all.")
    d.add_argument("ids", nargs="*", metavar="ID", help="Ids of the rules to delete.")
    d.add_argument("--value", dest="values", action="append", metavar="VALUE",
                   help="Delete the rule with this exact value (repeat for several).")
    d.add_argument("--all", action="store_true", help="Delete every rule of the app.")
    d.add_argument("--dry-run", action="store_true", help="Only check with X; delete nothing.")
    return r
