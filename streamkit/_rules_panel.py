"""The "Rules" area of the notebook panel for the X API v2 filtered stream.

A panel whose source is ``"x-v2"`` shows the app's filtered-stream rules (id, value, tag)
under its capture controls, with a value and a tag to add (optionally as a dry run, which only
shows X's verdict), a list to select rules from for "Delete selected", "Delete all" (a second
click confirms) and "Refresh". The calls go to ``{base_url}/2/tweets/search/stream/rules`` with
the same bearer token and server as the capture: the collector's ``bearer_token`` option, else
``$STREAMKIT_BEARER_TOKEN``. The token is never shown.

Rules belong to the app, not to a connection: X applies a change to a running filtered stream at
once, so nothing here restarts the capture. Every outcome, good or bad (an invalid rule, a
duplicate, a refused token, a rate limit with the time it resets, an unreachable server), is a
sentence in the area's message line; nothing is raised into the notebook. The calls are short
HTTP requests with a timeout, made by the button handlers themselves (no thread).

Examples
--------
>>> import streamkit
>>> from streamkit.testing import XV2Server
>>> with XV2Server(rules=[("python", "py")]) as server:
...     p = streamkit.panel(source="x-v2", base_url=server.url, bearer_token=server.bearer_token)
...     loaded = p.rules.refresh()
...     listed = [(r.value, r.tag) for r in p.rules.listed]
...     p.rules.inputs["value"].value, p.rules.inputs["tag"].value = "climate lang:en", "clim"
...     p.rules.buttons["add"].click()
...     stored = sorted(r["value"] for r in server.rules)
...     p.close()
>>> listed, stored
([('python', 'py')], ['climate lang:en', 'python'])
>>> p.rules.message
"Added 'climate lang:en' (tag clim). X applies it to a running capture at once: no restart needed."
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ._exceptions import AuthError, ConfigError, RateLimited, StreamkitError
from .sources.x_v2 import BEARER_ENV, DEFAULT_API_URL

__all__ = ["RulesArea"]

log = logging.getLogger("streamkit.widgets.rules")

_NOTE = ("Rules of your X app: the filtered stream sends the posts that match any of them (the sample "
         "stream ignores them). Changes apply to a running capture at once.")


def _plural(n: int, word: str = "rule") -> str:
    return f"{n} {word}{'s' * (n != 1)}"


class RulesArea:
    """The panel's "Rules" area: list, add (with a tag, or as a dry run), delete the app's rules.

    Built by :class:`streamkit.widgets.Panel` for the ``"x-v2"`` source (as ``panel.rules``);
    the rules are loaded when the panel is first displayed and after every change.

    Parameters
    ----------
    widgets : module
        ipywidgets (already imported by the panel).
    token : callable
        Returns the bearer token to use, or None for ``$STREAMKIT_BEARER_TOKEN``. Called for
        each request, so a token set after the panel was built is used.
    base_url : callable
        Returns the X API server (None for ``https://api.x.com``): the capture's.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The area; ``inputs`` (``value``, ``tag``, ``dry_run``), ``buttons`` (``add``,
        ``delete_selected``, ``delete_all``, ``refresh``) and ``select`` (the list of rules,
        its value the selected ids) hold its controls.
    listed : list of StreamRule
        The rules as last loaded (empty until loaded).

    Examples
    --------
    >>> import ipywidgets
    >>> from streamkit.testing import XV2Server
    >>> with XV2Server(rules=["python", "climate"]) as server:
    ...     area = RulesArea(ipywidgets, token=lambda: server.bearer_token, base_url=lambda: server.url)
    ...     loaded = area.refresh()
    ...     area.buttons["delete_all"].click()       # asks for a second click
    ...     asked, left = area.message, len(server.rules)
    ...     area.buttons["delete_all"].click()
    ...     area.close()
    >>> left, asked
    (2, "Press 'Delete all' again to delete all 2 rules of the app (any other button cancels).")
    >>> server.rules, area.message
    ([], 'Deleted all 2 rules. No rule is left: the filtered stream sends nothing until you add one.')
    """

    def __init__(self, widgets: Any, *, token: Callable[[], str | None],
                 base_url: Callable[[], str | None]) -> None:
        w = widgets
        self._token = token
        self._base_url = base_url
        self._lock = threading.RLock()
        self._armed = False  # "Delete all" pressed once: the next press deletes
        self._loaded = False
        self._message = ""
        self.listed: list[Any] = []
        self.inputs = {
            "value": w.Text(description="Rule", placeholder="climate (cop30 OR #cop30) lang:en -is:retweet",
                            layout=w.Layout(flex="1 1 auto", width="auto"), style={"description_width": "40px"}),
            "tag": w.Text(description="Tag", placeholder="optional label, e.g. cop30",
                          layout=w.Layout(width="220px"), style={"description_width": "40px"}),
            "dry_run": w.Checkbox(value=False, description="Dry run", indent=False,
                                  tooltip="Only ask X whether the rule is valid; add nothing",
                                  layout=w.Layout(width="90px")),
        }
        self.buttons = {
            "add": w.Button(description="Add", icon="plus", button_style="success",
                            tooltip="Add the rule (with the tag) to the app"),
            "delete_selected": w.Button(description="Delete selected", icon="trash",
                                        tooltip="Delete the rules selected in the list"),
            "delete_all": w.Button(description="Delete all", icon="trash", button_style="danger",
                                   tooltip="Delete every rule of the app (a second click confirms)"),
            "refresh": w.Button(description="Refresh", icon="refresh", tooltip="Load the rules again"),
        }
        self.select = w.SelectMultiple(options=[], rows=4, layout=w.Layout(width="auto"))
        self._status = w.HTML()
        self._msg = w.HTML()
        for name, widget in {**self.inputs, **self.buttons}.items():
            widget.add_class(f"streamkit-rules-{name}")
        self.select.add_class("streamkit-rules-list")
        self._msg.add_class("streamkit-rules-message")
        self.buttons["add"].on_click(lambda _b: self.add())
        self.buttons["delete_selected"].on_click(lambda _b: self.delete_selected())
        self.buttons["delete_all"].on_click(lambda _b: self.delete_all())
        self.buttons["refresh"].on_click(lambda _b: self.refresh())
        self.widget = w.VBox(
            [
                w.HTML(f"<b>Rules</b> <span style='color:#777'>{html.escape(_NOTE)}</span>"),
                self._status,
                self.select,
                w.HBox([self.inputs["value"], self.inputs["tag"], self.inputs["dry_run"], self.buttons["add"]],
                       layout=w.Layout(align_items="center")),
                w.HBox([self.buttons["delete_selected"], self.buttons["delete_all"], self.buttons["refresh"]]),
                self._msg,
            ],
            layout=w.Layout(border_top="1px solid #eee", padding="6px 0 0 0", margin="6px 0 0 0"),
        )
        self.widget.add_class("streamkit-rules")
        self._show_list()

    # -- public API ----------------------------------------------------------------------
    @property
    def message(self) -> str:
        """The area's last message (what the last action did, or why it failed), as text."""
        return self._message

    @property
    def loaded(self) -> bool:
        """True once the rules were loaded (successfully) at least once."""
        return self._loaded

    def refresh(self, *, quiet: bool = False) -> bool:
        """Load the rules again (the Refresh button); returns True when they were loaded."""
        with self._lock:
            self._disarm()
            ok = self._call("The rules could not be loaded", self._load) is not None
            if ok and not quiet:
                self._say(f"Loaded {_plural(len(self.listed))} from {self._where()}.")
            return ok

    def add(self) -> None:
        """Add the rule in the inputs, or with Dry run checked only show X's verdict (the Add button)."""
        from .x_client import StreamRule

        with self._lock:
            self._disarm()
            value = self.inputs["value"].value.strip()
            tag = self.inputs["tag"].value.strip() or None
            dry = bool(self.inputs["dry_run"].value)
            if not value:
                self._say("Type a rule first, e.g. climate (cop30 OR #cop30) lang:en -is:retweet.", error=True)
                return
            rule = StreamRule(value, tag)
            said = f"{value!r}" + (f" (tag {tag})" if tag else "")
            if dry:
                done = self._call(f"Dry run of {said} failed", lambda c: c.add_rules(rule, dry_run=True),
                                  value, refused=f"Dry run: X refuses {said}")
                if done is not None:
                    if done.errors:
                        self._say(f"Dry run: {said} already exists (id {done.errors[0].get('id')}); nothing changed.")
                    else:
                        self._say(f"Dry run: X accepts {said} as a valid rule; nothing was added "
                                  "(uncheck Dry run and press Add to add it).")
                return
            done = self._call(f"{said} was not added", lambda c: c.add_rules(rule),
                              value, refused=f"Not added: X refused {said}")
            if done is None:
                return
            if done.errors:
                self._reload_then_say(f"{said} already exists (id {done.errors[0].get('id')}); left as it is.")
            else:
                self.inputs["value"].value = ""
                self.inputs["tag"].value = ""
                self._reload_then_say(f"Added {said}. X applies it to a running capture at once: no restart needed.")

    def delete_selected(self) -> None:
        """Delete the rules selected in the list (the Delete selected button)."""
        with self._lock:
            self._disarm()
            ids = [str(i) for i in self.select.value]
            if not ids:
                self._say("Select one or more rules in the list first (Ctrl/Shift-click for several).", error=True)
                return
            done = self._call("Not deleted", lambda c: c.delete_rules(ids))
            if done is not None:
                n = done.meta.get("summary", {}).get("deleted", len(ids))
                self._reload_then_say(f"Deleted {_plural(n)}.", lambda: f" {_plural(len(self.listed))} left.")
            elif "could not delete" in self._message:  # deleted elsewhere meanwhile: show the list as it is
                said = self._message
                if self._call("", self._load) is not None:
                    self._say(f"{said} The list is reloaded.", error=True)

    def delete_all(self) -> None:
        """Delete every rule of the app: the first call asks, the second deletes (the Delete all button)."""
        with self._lock:
            if not self._armed:
                if self._call("The rules could not be loaded", self._load) is None:
                    return
                if not self.listed:
                    self._say("There are no rules to delete.")
                    return
                self._armed = True
                self.buttons["delete_all"].description = f"Confirm: delete all {len(self.listed)}"
                self._say(f"Press 'Delete all' again to delete all {_plural(len(self.listed))} of the app "
                          "(any other button cancels).", error=True)
                return
            self._disarm()
            done = self._call("Not deleted", lambda c: c.delete_all_rules())
            if done is not None:
                self._reload_then_say(f"Deleted all {_plural(len(done.data))}.", lambda: (
                    f" {_plural(len(self.listed))} left (added meanwhile)." if self.listed else
                    " No rule is left: the filtered stream sends nothing until you add one."))

    def close(self) -> None:
        """Close the area's widgets."""
        for widget in [*self.inputs.values(), *self.buttons.values(), self.select, self._status, self._msg]:
            widget.close()
        self.widget.close()

    # -- internals ---------------------------------------------------------------------------
    def _where(self) -> str:
        return self._base_url() or DEFAULT_API_URL

    def _reload_then_say(self, done: str, more: Callable[[], str] = str) -> None:
        """After a change: load the list again, then say what was done (and that the list is stale
        when it could not be loaded)."""
        if self._call(f"{done} The list could not be reloaded", self._load) is not None:
            self._say(done + more())

    def _load(self, client: Any) -> Any:
        self.listed = list(client.get_rules().data)
        self._loaded = True
        self._show_list()
        return self.listed

    def _show_list(self) -> None:
        selected = set(self.select.value)
        options = [(f"{r.value}   ·   tag: {r.tag or '–'}   ·   id {r.id}", r.id) for r in self.listed]
        self.select.options = options
        self.select.value = tuple(i for _label, i in options if i in selected)
        self.select.rows = min(max(len(options), 3), 10)
        if not self._loaded:
            status = "Rules not loaded yet: press Refresh."
        elif self.listed:
            status = f"{_plural(len(self.listed))} on {self._where()} (id, value and tag; select to delete):"
        else:
            status = f"No rules on {self._where()}: add one below, or the filtered stream sends nothing."
        self._status.value = f"<span class='streamkit-rules-status' style='color:#555'>{html.escape(status)}</span>"

    def _call(self, failed: str, action: Callable[[Any], Any], value: str | None = None,
              refused: str | None = None) -> Any:
        """Run ``action(client)``; None (and a message) when it failed. Never raises.

        ``failed`` starts the message of any failure; ``refused`` (when given) that of X refusing
        the rule ``value`` (X's reason repeats the value, the message says it once).
        """
        from .x_client import StreamingClient

        for button in self.buttons.values():
            button.disabled = True
        token = None
        client = None
        try:
            token = self._token()
            try:
                client = StreamingClient(token, base_url=self._where())
            except ConfigError as exc:
                self._say(f"{failed}. {exc}", error=True, token=token)
                return None
            return action(client)
        except AuthError as exc:
            self._say(f"{failed}: the bearer token was refused (HTTP {exc.status_code}). Set {BEARER_ENV} to "
                      "your app's Bearer Token (X developer console) and press Refresh.", error=True, token=token)
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else 60.0
            at = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
            self._say(f"{failed}: X rate-limits the rules endpoint (450 requests per 15 minutes); it resets "
                      f"at {at}, in {wait:.0f} s. Try again then.", error=True, token=token)
        except ConfigError as exc:  # X refused the rule (syntax, cap) or an id that does not exist
            reason = str(exc)
            for prefix in ("X refused 1 rule: ", "X refused "):
                if reason.startswith(prefix):
                    reason = reason[len(prefix):]
                    break
            reason = reason.replace(" List the rules with get_rules() (or `streamkit rules list`).", "")
            if value is not None and reason.startswith(f"{value!r}: "):
                reason = reason[len(repr(value)) + 2:]
            self._say(f"{refused or failed}: {reason}", error=True, token=token)
        except StreamkitError as exc:  # HTTP errors, an unreachable server
            self._say(f"{failed}: {exc}", error=True, token=token)
        except Exception as exc:  # a button must report, never raise into the notebook
            log.exception("a rules call from the panel failed")
            self._say(f"{failed}: {type(exc).__name__}: {exc}", error=True, token=token)
        finally:
            if client is not None:
                client.close()
            for button in self.buttons.values():
                button.disabled = False
        return None

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
        self.buttons["delete_all"].description = "Delete all"

    def _say(self, text: str, *, error: bool = False, token: str | None = None) -> None:
        import os

        for secret in (token, os.environ.get(BEARER_ENV)):
            if secret:
                text = text.replace(secret, "***")
        self._message = text
        color, icon = ("#b00020", "⚠ ") if error else ("#1b5e20", "")
        kind = "error" if error else "info"
        self._msg.value = (f"<div class='streamkit-rules-msg' data-kind='{kind}' style='color:{color}'>"
                           f"{icon}{html.escape(text)}</div>")
