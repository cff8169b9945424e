"""The X API v2 panel's "Rules" area against the real local XV2Server, buttons pressed in code."""

from __future__ import annotations

import functools
import re
import threading

import pytest

pytest.importorskip("ipywidgets")

import helpers

import streamkit  # noqa: E402
from streamkit.testing import XV2Server  # noqa: E402

TOKEN = "AAAA-panel-rules-sekrit-0123456789"
FAST = dict(refresh_interval=0.2, flush_seconds=0.2, progress=False, timeout=2.0)
wait_until = functools.partial(helpers.wait_until, timeout=30.0, interval=0.02)


def shown(p) -> str:
    """Everything the rules area shows: the list, its status and message lines."""
    r = p.rules
    return " ".join([*(label for label, _id in r.select.options), r._status.value, r._msg.value, r.message,
                     p.message, p._msg.value])


def make(server, tmp_path, **options):
    return streamkit.panel(source="x-v2", base_url=server.url, path=tmp_path / "d", **FAST, **options)


def test_the_rules_area_lists_adds_with_tag_dry_runs_and_words_refusals(tmp_path, monkeypatch):
    with XV2Server(bearer_token=TOKEN, rules=[("python", "py"), ("climate lang:en", None)]) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", TOKEN)
        p = make(server, tmp_path)
        try:
            assert p.rules is not None and not p.rules.loaded
            p._repr_mimebundle_()  # the first display loads the app's rules
            assert p.rules.loaded, p.rules.message
            on_server = {(r["id"], r["value"], r.get("tag")) for r in server.rules}
            assert {(r.id, r.value, r.tag) for r in p.rules.listed} == on_server
            labels = [label for label, _id in p.rules.select.options]
            assert len(labels) == 2 and all(str(rid) in " ".join(labels) for rid, _v, _t in on_server)
            assert any("python" in label and "py" in label for label in labels)
            assert "2 rules on " + server.url in p.rules._status.value

            # add with a tag -> stored on the server with it, and listed
            p.rules.inputs["value"].value = "#rstats OR tidyverse"
            p.rules.inputs["tag"].value = "r"
            p.rules.buttons["add"].click()
            assert {"value": "#rstats OR tidyverse", "tag": "r"}.items() <= next(
                r for r in server.rules if r["value"] == "#rstats OR tidyverse").items(), server.rules
            assert p.rules.message.startswith("Added '#rstats OR tidyverse' (tag r)")
            assert "no restart" in p.rules.message and p.rules.inputs["value"].value == ""
            assert len(p.rules.select.options) == 3

            # dry run -> X's verdict shown, nothing added
            p.rules.inputs["value"].value = "dog has:images"
            p.rules.inputs["dry_run"].value = True
            p.rules.buttons["add"].click()
            assert server.requests[-1].params.get("dry_run") == ["true"], server.requests[-1]
            assert "X accepts 'dog has:images'" in p.rules.message and "nothing was added" in p.rules.message
            assert "dog has:images" not in [r["value"] for r in server.rules] and len(server.rules) == 3
            # an invalid rule in a dry run: X's reason, nothing raised
            p.rules.inputs["value"].value = "(cat"
            p.rules.buttons["add"].click()
            assert p.rules.message.startswith("Dry run: X refuses '(cat': "), p.rules.message
            p.rules.inputs["dry_run"].value = False

            # invalid rule -> X's reason in words, nothing raised, nothing added
            p.rules.inputs["value"].value = "-cat"
            p.rules.buttons["add"].click()
            assert p.rules.message == ("Not added: X refused '-cat': Rules must contain a non-negation term "
                                       "(at position 1)"), p.rules.message
            assert "data-kind='error'" in p.rules._msg.value and len(server.rules) == 3
            # a duplicate is not an error: left as it is, with its id
            p.rules.inputs["value"].value = "python"
            p.rules.buttons["add"].click()
            python_id = next(r["id"] for r in server.rules if r["value"] == "python")
            assert p.rules.message == f"'python' already exists (id {python_id}); left as it is."
            # an empty value
            p.rules.inputs["value"].value = "  "
            p.rules.buttons["add"].click()
            assert "Type a rule first" in p.rules.message and len(server.rules) == 3
            assert TOKEN not in shown(p)
        finally:
            p.close()


def test_delete_selected_and_delete_all_with_confirmation(tmp_path, monkeypatch):
    with XV2Server(bearer_token=TOKEN, rules=[("python", "py"), ("climate", "cl"), ("cats", None), "dogs"]) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", TOKEN)
        p = make(server, tmp_path)
        try:
            assert p.rules.refresh()
            p.rules.buttons["delete_selected"].click()  # nothing selected: says so
            assert "Select one or more rules" in p.rules.message and len(server.rules) == 4
            ids = {r["value"]: r["id"] for r in server.rules}
            p.rules.select.value = (ids["python"], ids["cats"])
            p.rules.buttons["delete_selected"].click()
            assert sorted(r["value"] for r in server.rules) == ["climate", "dogs"]
            assert p.rules.message == "Deleted 2 rules. 2 rules left."
            assert {r.id for r in p.rules.listed} == {ids["climate"], ids["dogs"]} and p.rules.select.value == ()

            # a selected rule deleted elsewhere meanwhile: X's answer, and the list as it is now
            p.rules.select.value = (ids["dogs"],)
            server.client().delete_rules([ids["dogs"]])
            p.rules.buttons["delete_selected"].click()
            assert p.rules.message == (f"Not deleted: X could not delete 1 rule(s): '{ids['dogs']}': Rule does not "
                                       f"exist: {ids['dogs']}. The list is reloaded."), p.rules.message
            assert [r.id for r in p.rules.listed] == [ids["climate"]]
            server.client().add_rules("dogs")
            p.rules.refresh()

            # delete all: the first click only asks; any other button cancels
            p.rules.buttons["delete_all"].click()
            assert len(server.rules) == 2 and "again to delete all 2 rules" in p.rules.message
            assert p.rules.buttons["delete_all"].description == "Confirm: delete all 2"
            p.rules.buttons["refresh"].click()
            assert p.rules.buttons["delete_all"].description == "Delete all"
            p.rules.buttons["delete_all"].click()
            assert len(server.rules) == 2
            p.rules.buttons["delete_all"].click()  # the confirmation
            assert server.rules == [] and p.rules.listed == [] and p.rules.select.options == ()
            assert p.rules.message.startswith("Deleted all 2 rules.")
            p.rules.buttons["delete_all"].click()
            assert p.rules.message == "There are no rules to delete."
            assert "No rules on " in p.rules._status.value
        finally:
            p.close()


def test_a_rule_added_from_the_panel_reaches_the_running_capture_without_a_restart(tmp_path, monkeypatch):
    with XV2Server(bearer_token=TOKEN, rate=150, rules=[("python", "py")], match_fraction=1.0,
                   keepalive_interval=0.3) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", TOKEN)
        p = make(server, tmp_path)
        try:
            p._repr_mimebundle_()
            p.buttons["start"].click()
            collector = p.collector
            assert collector is not None and collector.running, p.message
            assert wait_until(lambda: collector.stats.stored >= 5)
            p.rules.inputs["value"].value = "zebrafish"
            p.rules.inputs["tag"].value = "zf"
            p.rules.buttons["add"].click()
            assert p.rules.message.startswith("Added 'zebrafish' (tag zf)"), p.rules.message
            zf = next(r["id"] for r in server.rules if r["value"] == "zebrafish")
            # posts matching the new rule arrive on the same connection and are stored
            assert wait_until(lambda: int(re.search(r"data-rows='(\d+)'", p._table.value).group(1)) >= 5)
            assert wait_until(lambda: "zebrafish" in p._table.value.lower())
            p.buttons["stop"].click()
            assert p.collector is collector and len(server.connections) == 1
        finally:
            p.close()
    df = streamkit.read(tmp_path / "d")
    hits = df[df["text"].str.contains("zebrafish", case=False)]
    assert len(hits) >= 1
    assert all(zf in str(rules) and "zf" in str(rules) for rules in hits["matching_rules"])


def test_refused_missing_token_rate_limit_and_network_errors_are_words_not_exceptions(tmp_path, monkeypatch):
    wrong = "AAAA-wrong-token-9876543210"
    before = {t.name for t in threading.enumerate() if t.name.startswith("streamkit")}
    with XV2Server(bearer_token=TOKEN, rules=["python"], rules_limit=3, rules_window=600) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", wrong)
        p = make(server, tmp_path)
        try:
            assert not p.rules.refresh()
            msg = p.rules.message
            assert "bearer token was refused (HTTP 401)" in msg and "STREAMKIT_BEARER_TOKEN" in msg, msg
            p.rules.inputs["value"].value = "climate"
            p.rules.buttons["add"].click()
            assert p.rules.message.startswith("'climate' was not added: the bearer token was refused (HTTP 401)")
            assert wrong not in shown(p) and TOKEN not in shown(p)
            assert [r["value"] for r in server.rules] == ["python"]

            monkeypatch.delenv("STREAMKIT_BEARER_TOKEN")
            assert not p.rules.refresh()
            assert "no X API bearer token" in p.rules.message and "STREAMKIT_BEARER_TOKEN" in p.rules.message

            monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", TOKEN)  # a token set later is used
            assert p.rules.refresh() and [r.value for r in p.rules.listed] == ["python"]
            while server.rules and "rate-limits" not in p.rules.message:  # rules_limit=3: soon HTTP 429
                p.rules.refresh()
                assert len(server.requests) < 20
            assert re.search(r"resets at \d\d:\d\d:\d\d UTC, in \d+ s", p.rules.message), p.rules.message
            assert "data-kind='error'" in p.rules._msg.value
        finally:
            p.close()
        url = server.url
    # the server is gone: an unreachable server is a message too
    p = streamkit.panel(source="x-v2", base_url=url, path=tmp_path / "e", **FAST)
    try:
        assert not p.rules.refresh()
        assert p.rules.message.startswith("The rules could not be loaded: could not reach " + url), p.rules.message
    finally:
        p.close()
    after = {t.name for t in threading.enumerate() if t.name.startswith("streamkit")}
    assert after <= before  # the rules calls start no thread


def test_the_token_given_to_collect_is_used_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.delenv("STREAMKIT_BEARER_TOKEN", raising=False)
    with XV2Server(bearer_token=TOKEN, rate=100, rules=[("python", "py")], match_fraction=1.0,
                   keepalive_interval=0.3) as server:
        with streamkit.collect(source="x-v2", bearer_token=TOKEN, base_url=server.url, path=tmp_path / "d",
                               flush_seconds=0.2, progress=False, timeout=2.0) as c:
            p = c.panel()
            try:
                p._repr_mimebundle_()
                assert [(r.value, r.tag) for r in p.rules.listed] == [("python", "py")], p.rules.message
                p.rules.select.value = (p.rules.listed[0].id,)
                p.rules.buttons["delete_selected"].click()
                assert server.rules == []
                html = p.widget._repr_mimebundle_()["text/plain"] + shown(p) + p._where.value + p._table.value
                assert TOKEN not in html
            finally:
                p.close()
        # a panel built before any capture takes the token as an option, like collect()
        p = streamkit.panel(source="x-v2", base_url=server.url, bearer_token=TOKEN, path=tmp_path / "e", **FAST)
        try:
            assert p.rules.refresh() and p.rules.listed == []
            p.rules.inputs["value"].value = "python"
            p.rules.buttons["add"].click()
            p.buttons["start"].click()  # and Start captures with it, though the environment has none
            assert p.running, p.message
            assert wait_until(lambda: p.collector.stats.stored >= 3)
            p.buttons["stop"].click()
            assert TOKEN not in repr(p) + shown(p) + p._where.value + p._table.value
        finally:
            p.close()


def test_a_change_made_but_not_relisted_says_both(tmp_path, monkeypatch):
    with XV2Server(bearer_token=TOKEN, rules=["python"], rules_limit=2, rules_window=600) as server:
        monkeypatch.setenv("STREAMKIT_BEARER_TOKEN", TOKEN)
        p = make(server, tmp_path)
        try:
            assert p.rules.refresh()  # request 1
            p.rules.inputs["value"].value = "climate"
            p.rules.buttons["add"].click()  # request 2 adds; the list request after it is over the limit
            assert sorted(r["value"] for r in server.rules) == ["climate", "python"]
            assert p.rules.message.startswith("Added 'climate'. X applies it to a running capture at once: no "
                                              "restart needed. The list could not be reloaded: X rate-limits"), \
                p.rules.message
            assert [r.value for r in p.rules.listed] == ["python"]  # the last list loaded, said to be stale
        finally:
            p.close()
