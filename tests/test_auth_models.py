"""Credentials never show their secrets; models give attribute access."""

from __future__ import annotations

import logging
import pickle

import pytest

import streamkit
from streamkit import OAuthHandler, Status, auth_from_env
from streamkit.auth import ENV_VARS

SECRETS = {
    "consumer_key": "CK-planted-4f1c",
    "consumer_secret": "CS-planted-9a7e",
    "access_token": "AT-planted-51d2",
    "access_token_secret": "ATS-planted-0b3f",
    "bearer_token": "BT-planted-77aa",
}


def test_repr_and_str_hide_secrets():
    auth = OAuthHandler(SECRETS["consumer_key"], SECRETS["consumer_secret"])
    auth.set_access_token(SECRETS["access_token"], SECRETS["access_token_secret"])
    text = repr(auth) + str(auth) + repr(streamkit.API(auth))
    text += repr(streamkit.BearerTokenHandler(SECRETS["bearer_token"]))
    for value in SECRETS.values():
        assert value not in text
        assert value[4:] not in text


def test_handlers_refuse_pickling():
    auth = OAuthHandler("a", "b")
    with pytest.raises(TypeError, match="secrets"):
        pickle.dumps(auth)


def test_auth_from_env_names_every_missing_variable():
    env = {ENV_VARS["consumer_key"]: SECRETS["consumer_key"]}
    with pytest.raises(streamkit.ConfigError) as info:
        auth_from_env(environ=env)
    message = str(info.value)
    for name in ("STREAMKIT_CONSUMER_SECRET", "STREAMKIT_ACCESS_TOKEN", "STREAMKIT_ACCESS_TOKEN_SECRET"):
        assert name in message
    assert SECRETS["consumer_key"] not in message


def test_auth_from_env_reads_the_environment(monkeypatch):
    for key, var in ENV_VARS.items():
        monkeypatch.setenv(var, SECRETS[key])
    auth = auth_from_env()
    assert auth.consumer_key == SECRETS["consumer_key"]
    assert auth.access_token_secret == SECRETS["access_token_secret"]
    assert auth_from_env("bearer").bearer_token == SECRETS["bearer_token"]


def test_missing_access_token_is_a_clear_error():
    with pytest.raises(streamkit.ConfigError, match="set_access_token"):
        OAuthHandler("a", "b").apply_auth()


def test_empty_key_is_rejected():
    with pytest.raises(streamkit.ConfigError, match="consumer_key"):
        OAuthHandler("", "b")


def test_status_attribute_access_and_full_text():
    status = Status.parse(
        {
            "id": 10,
            "text": "cut…",
            "truncated": True,
            "created_at": "Wed Oct 10 20:19:24 +0000 2018",
            "user": {"id": 1, "screen_name": "ada"},
            "extended_tweet": {"full_text": "complete text", "entities": {"hashtags": [{"text": "py"}]}},
            "entities": {"hashtags": []},
            "quoted_status": {"id": 9, "text": "quoted", "user": {"screen_name": "bob"}},
        }
    )
    assert status.user.screen_name == "ada"
    assert isinstance(status.user, streamkit.User)
    assert status.full_text == "complete text"
    assert status.extended_tweet.entities["hashtags"][0].text == "py"
    assert status.quoted_status.user.screen_name == "bob"
    assert status.created_at.utcoffset().total_seconds() == 0
    assert status._json["id"] == 10
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = status.nope
    with pytest.raises(AttributeError, match="read-only"):
        status.text = "x"


def test_secrets_do_not_reach_logs(caplog):
    caplog.set_level(logging.DEBUG)
    auth = OAuthHandler(SECRETS["consumer_key"], SECRETS["consumer_secret"])
    logging.getLogger("streamkit").debug("auth is %r", auth)
    assert SECRETS["consumer_key"] not in caplog.text
