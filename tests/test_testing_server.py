"""The local v1.1 streaming server, exercised over real loopback HTTP.

A small raw-socket client below parses chunked encoding and both framings by
hand, so these tests check the bytes on the wire, not what a library makes of
them; `requests` + `requests_oauthlib` cover the auth handshake as a real
client would do it.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import pytest
import requests
from oauthlib.oauth1 import Client
from requests_oauthlib import OAuth1

from streamkit.testing import (
    FILTER_PATH,
    SAMPLE_PATH,
    TEST_CREDENTIALS,
    Fault,
    FaultPlan,
    StreamServer,
    format_created_at,
    generate_statuses,
    match_status,
    snowflake_ms,
)

C = TEST_CREDENTIALS
AUTH = OAuth1(C["consumer_key"], C["consumer_secret"], C["access_token"], C["access_token_secret"])
TRACK = ["python", "climate change"]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith("streamkit-testing")]
        if not left:
            return
        time.sleep(0.02)
    pytest.fail(f"server threads leaked: {left}")


class Raw:
    """A raw HTTP/1.1 streaming client that records chunks and messages exactly."""

    def __init__(self, server, params=None, *, path=FILTER_PATH, method="POST", sign=True,
                 credentials=C, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        params = dict(params if params is not None else {"track": ",".join(TRACK)})
        body = urlencode(params) if method == "POST" else ""
        url = server.url + path + ("" if method == "POST" else "?" + urlencode(params))
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        if sign:
            client = Client(credentials["consumer_key"], credentials["consumer_secret"],
                            credentials["access_token"], credentials["access_token_secret"])
            url, headers, body = client.sign(url, http_method=method, body=body or None,
                                             headers=headers)
        target = url[len(server.url):]
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        body_b = (body or "").encode()
        lines.append(f"Content-Length: {len(body_b)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body_b)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in hdrs)}
        self.chunks: list[bytes] = []
        self.payload = b""  # de-chunked bytes not yet framed into messages
        self.ended = False  # terminating chunk seen

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def body(self) -> bytes:
        n = int(self.headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        return self.buf[:n]

    def read_chunk(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            self._fill()
        size_line, _, rest = self.buf.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            self._fill()
            size_line, _, rest = self.buf.partition(b"\r\n")
        assert rest[size:size + 2] == b"\r\n", "chunk data must end with CRLF"
        self.buf = rest[size + 2:]
        if size == 0:
            self.ended = True
            return None
        chunk = rest[:size]
        self.chunks.append(chunk)
        self.payload += chunk
        return chunk

    def messages(self, delimited=False):
        """Yield (kind, bytes) with kind in {"keepalive", "message"}; framing checked."""
        while True:
            if delimited:
                while self.payload.startswith(b"\r\n"):
                    self.payload = self.payload[2:]
                    yield "keepalive", b""
                while b"\r\n" not in self.payload:
                    if self.read_chunk() is None:
                        return
                line, _, rest = self.payload.partition(b"\r\n")
                if not line:
                    continue
                n = int(line)
                while len(rest) < n:
                    if self.read_chunk() is None:
                        return
                    line, _, rest = self.payload.partition(b"\r\n")
                assert rest[n - 2:n] == b"\r\n", "length prefix must count the trailing CRLF"
                self.payload = rest[n:]
                yield "message", rest[:n - 2]
            else:
                while b"\r\n" not in self.payload:
                    if self.read_chunk() is None:
                        return
                line, _, self.payload = self.payload.partition(b"\r\n")
                yield ("message", line) if line else ("keepalive", b"")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def statuses_of(messages):
    for kind, msg in messages:
        if kind == "message" and msg.startswith(b'{"created_at"'):
            yield json.loads(msg)


def read_statuses(raw, n, delimited=False):
    return list(itertools.islice(statuses_of(raw.messages(delimited)), n))


def eventually(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_until_eof(raw, delimited=False):
    """Every message until the server closes; (messages, clean end?)."""
    out = []
    try:
        for kind, msg in raw.messages(delimited):
            out.append((kind, msg))
    except EOFError:
        return out, False
    return out, True


# -- auth ------------------------------------------------------------------------------
def test_oauth_signature_accepted_and_bad_signature_refused():
    with StreamServer(statuses=2) as server:
        url = server.url + FILTER_PATH
        with requests.post(url, data={"track": "python"}, auth=AUTH, stream=True) as r:
            assert r.status_code == 200
            assert r.headers["transfer-encoding"] == "chunked"
        bad = OAuth1(C["consumer_key"], "wrong-secret", C["access_token"], C["access_token_secret"])
        r = requests.post(url, data={"track": "python"}, auth=bad)
        assert r.status_code == 401
        assert r.content == b'{"errors":[{"code":32,"message":"Could not authenticate you."}]}'
        assert requests.post(url, data={"track": "python"}).status_code == 401
        # The form body is part of the signature: change it after signing -> 401.
        req = requests.Request("POST", url, data={"track": "python"}, auth=AUTH).prepare()
        req.body = "track=jython"  # same length, different content
        with requests.Session() as s:
            assert s.send(req).status_code == 401
        # Query-string parameters are signed too, and accepted for filter.
        with requests.post(url, params={"track": "python"}, auth=AUTH, stream=True) as r:
            assert r.status_code == 200
        with requests.get(server.url + SAMPLE_PATH, stream=True,
                          headers={"Authorization": "Bearer " + C["bearer_token"]}) as r:
            assert r.status_code == 200
        assert [rec.status for rec in server.requests] == [200, 401, 401, 401, 200, 200]
        assert server.requests[0].params == {"track": ["python"]}
        assert server.requests[0].method == "POST" and server.requests[0].path == FILTER_PATH


def test_check_auth_false_accepts_anything():
    with StreamServer(statuses=1, check_auth=False) as server:
        with Raw(server, sign=False) as raw:
            assert raw.status == 200
            assert len(read_statuses(raw, 1)) == 1


def test_parameter_errors_like_twitter():
    with StreamServer(statuses=0) as server:
        url = server.url + FILTER_PATH

        def post(**data):
            return requests.post(url, data=data, auth=AUTH)

        assert post(language="en").status_code == 406
        assert post(track=",".join(f"w{i}" for i in range(401))).status_code == 413
        assert post(track="x" * 61).status_code == 406
        assert post(locations="-122.75,36.8,-121.75").status_code == 406
        assert post(locations="-122.75,36.8,-121.75,95").status_code == 406
        assert post(locations="-121.75,36.8,-122.75,37.8").status_code == 406
        assert post(follow="12,abc").status_code == 406
        assert post(track="python", count="100").status_code == 416
        r = requests.get(url, params={"track": "python"}, auth=AUTH)
        assert r.status_code == 405
        r = requests.get(server.url + "/1.1/statuses/firehose.json", auth=AUTH)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == 34
        assert "application/json" in r.headers["content-type"]


# -- framing ------------------------------------------------------------------------------
@pytest.mark.parametrize("delimited", [False, True])
def test_framings_chunks_and_sent_match_what_client_received(delimited):
    n = 400
    params = {"track": ",".join(TRACK), "stall_warnings": "true"}
    if delimited:
        params["delimited"] = "length"
    with StreamServer(statuses=n, seed=3, record_payloads=True, notices=0.05,
                      chunk_bytes=4096) as server:
        with Raw(server, params) as raw:
            received, raw_bodies, notices = [], {}, 0
            for kind, msg in raw.messages(delimited):
                if kind == "keepalive":
                    continue
                obj = json.loads(msg)
                if "created_at" in obj:
                    received.append(obj["id"])
                    raw_bodies[obj["id"]] = msg
                else:
                    notices += 1
                if len(received) == n:
                    break
        assert server.wait_sent(n, 5)
        assert server.sent == received
        assert len(set(received)) == n
        assert server.sent_payloads == raw_bodies
        assert notices == len(server.sent_notices) > 0
        # Chunk borders must not follow message borders.
        sizes = Counter(len(c) for c in raw.chunks)
        assert sizes.most_common(1)[0][0] == 4096
        ends = set(itertools.accumulate(len(c) for c in raw.chunks))
        wire = b"".join(raw.chunks)
        boundaries = set()
        pos = 0
        while (nl := wire.find(b"\r\n", pos)) >= 0:
            pos = nl + 2 + (int(wire[pos:nl]) if delimited and nl > pos else 0)
            boundaries.add(pos)
        straddling = [e for e in ends if e not in boundaries]
        assert len(straddling) > len(ends) // 2


def test_keepalives_at_interval_when_idle_and_after_statuses_run_out():
    with StreamServer(statuses=3, keepalive_interval=0.15, notices=0) as server:
        with Raw(server) as raw:
            t0 = time.monotonic()
            kinds, times = [], []
            for kind, _ in raw.messages():
                kinds.append(kind)
                times.append(time.monotonic())
                if times[-1] - t0 > 1.0:
                    break
    assert kinds[:3] == ["message"] * 3
    keep = [t for k, t in zip(kinds, times, strict=True) if k == "keepalive"]
    assert len(keep) >= 4
    gaps = [b - a for a, b in itertools.pairwise(keep)]
    assert all(0.1 < g < 0.6 for g in gaps), gaps


# -- filtering --------------------------------------------------------------------------
def _stream_statuses(server, params, n, delimited=True):
    params = {**params, "delimited": "length"} if delimited else params
    with Raw(server, params) as raw:
        return read_statuses(raw, n, delimited)


def test_track_filter_delivers_only_matches_and_drops_the_rest():
    with StreamServer(statuses=600, seed=5) as server:
        got = _stream_statuses(server, {"track": ",".join(TRACK)}, 600)
        assert server.dropped > 20  # non-matching statuses were generated and skipped
    assert len(got) == 600
    assert all(match_status(s, track=TRACK) for s in got)
    assert not any(match_status(s, track=["pythonic"]) for s in got)
    # Matches come through the text, hashtags, mentions and expanded URLs.
    via = Counter()
    for s in got:
        ent = (s.get("extended_tweet") or s).get("entities", {})
        if any(h["text"].lower() == "python" for h in ent.get("hashtags", [])):
            via["hashtag"] += 1
        if any("python" in u["expanded_url"] for u in ent.get("urls", [])):
            via["url"] += 1
        if any(m["screen_name"] == "python" for m in ent.get("user_mentions", [])):
            via["mention"] += 1
    assert via["hashtag"] and via["url"] and via["mention"], via
    # The generator makes the non-matching ones the server drops.
    gen = generate_statuses(500, seed=1, track=TRACK, match_fraction=0.8)
    misses = sum(not match_status(s, track=TRACK) for s in gen)
    assert 50 < misses < 150


def test_follow_and_locations_filters():
    follow = [783214, 2244994945]
    box = [-74.1, 40.6, -73.8, 40.9]
    with StreamServer(seed=6) as server:
        got_f = _stream_statuses(server, {"follow": ",".join(map(str, follow))}, 400)
        got_l = _stream_statuses(server, {"locations": ",".join(map(str, box))}, 400)
        assert server.dropped > 0
    assert all(match_status(s, follow=follow) for s in got_f)
    how = Counter()
    for s in got_f:
        if s["user"]["id"] in follow:
            how["author"] += 1
        if s["in_reply_to_user_id"] in follow:
            how["reply"] += 1
        if s.get("retweeted_status", {}).get("user", {}).get("id") in follow:
            how["retweet"] += 1
    assert min(how["author"], how["reply"], how["retweet"]) > 10, how
    assert all(match_status(s, locations=box) for s in got_l)
    points = [s["coordinates"]["coordinates"] for s in got_l if s["coordinates"]]
    assert points and all(-74.1 <= x <= -73.8 and 40.6 <= y <= 40.9 for x, y in points)
    assert any(s["coordinates"] is None and s["place"] for s in got_l)


def test_sample_and_language_filter():
    with StreamServer(statuses=300, seed=7) as server:
        with Raw(server, {"language": "ja,es"}, path=SAMPLE_PATH, method="GET") as raw:
            got = read_statuses(raw, 300)
        assert server.dropped == 0
    assert {s["lang"] for s in got} == {"ja", "es"}


# -- faults -----------------------------------------------------------------------------
def test_http_faults_then_normal_connection():
    faults = [Fault.http(420), Fault.http(429, retry_after=7), Fault.http(503)]
    with StreamServer(faults=faults, statuses=5) as server:
        url = server.url + FILTER_PATH
        r1 = requests.post(url, data={"track": "python"}, auth=AUTH)
        r2 = requests.post(url, data={"track": "python"}, auth=AUTH)
        r3 = requests.post(url, data={"track": "python"}, auth=AUTH)
        assert (r1.status_code, r2.status_code, r3.status_code) == (420, 429, 503)
        assert r2.headers["retry-after"] == "7"
        assert r2.json()["errors"][0]["code"] == 88
        assert r1.json()["errors"][0]["message"].startswith("Enhance Your Calm")
        assert _stream_statuses(server, {"track": "python"}, 5)
        assert server.faults_injected == Counter(http=3)


def test_cut_fault_sends_n_then_half_a_message_and_is_never_resent():
    with StreamServer(faults=[Fault.cut(after=5)], statuses=20, seed=2, notices=0) as server:
        with Raw(server, {"track": "python", "delimited": "length"}) as raw:
            msgs, clean = read_until_eof(raw, delimited=True)
            leftover = raw.payload + raw.buf  # de-chunked, or inside an unfinished chunk
        assert not clean and not raw.ended  # no terminating chunk
        first = [json.loads(m)["id"] for k, m in msgs if k == "message"]
        assert len(first) == 5 and b'{"created_at"' in leftover  # half a message arrived
        assert server.sent == first
        with Raw(server, {"track": "python", "delimited": "length"}) as raw:
            rest = [s["id"] for s in read_statuses(raw, 15, delimited=True)]
        assert server.wait_sent(20, 5)
        assert server.sent == first + rest
        assert len(set(first + rest)) == 20 and first[-1] < rest[0]
        assert server.faults_injected == Counter(cut=1)


def test_cut_fault_is_a_chunked_encoding_error_for_requests():
    with StreamServer(faults=[Fault.cut(after=2)] * 4, notices=0) as server:
        for _ in range(4):
            with requests.post(server.url + FILTER_PATH, data={"track": "python"}, auth=AUTH,
                               stream=True) as r:
                lines = []
                with pytest.raises(requests.exceptions.ChunkedEncodingError):
                    for line in r.iter_lines():
                        lines.append(line)
                assert len([x for x in lines if x.startswith(b'{"created_at"')]) <= 2
        assert len(server.sent) == 8


def test_stall_fault_goes_silent_then_closes():
    with StreamServer(faults=[Fault.stall(after=2, seconds=0.6)], keepalive_interval=0.1,
                      notices=0) as server:
        with Raw(server) as raw:
            got = read_statuses(raw, 2)
            t0 = time.monotonic()
            msgs, clean = read_until_eof(raw)
            silent = time.monotonic() - t0
        assert len(got) == 2 and msgs == [] and not clean
        assert 0.5 < silent < 3.0
        assert server.faults_injected["stall"] == 1


@pytest.mark.parametrize("kind", ["malformed_json", "bad_length", "invalid_utf8", "oversized"])
def test_garbage_faults_then_stream_goes_on(kind):
    fault = Fault.garbage(after=3, kind=kind, size=1 << 20)
    with StreamServer(faults=[fault], statuses=6, notices=0, seed=4) as server:
        with Raw(server, {"track": "python", "delimited": "length"}) as raw:
            before = read_statuses(raw, 3, delimited=True)
            while raw.payload.count(b"\r\n") < 2:
                raw.read_chunk()
            # A robust client resyncs at the line after the bad message; so do we.
            prefix, bad_line, raw.payload = raw.payload.split(b"\r\n", 2)
            length = int(prefix)
            after = read_statuses(raw, 3, delimited=True)
        if kind == "malformed_json":
            assert length == len(bad_line) + 2
            with pytest.raises(json.JSONDecodeError):
                json.loads(bad_line)
        elif kind == "bad_length":
            assert length != len(bad_line) + 2 and json.loads(bad_line)["id"]
        elif kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                bad_line.decode("utf-8")
        else:
            assert length == len(bad_line) + 2 == (1 << 20) + 2
        ids = [s["id"] for s in before + after]
        assert server.wait_sent(6, 5)  # a client may read a batch before the server records it
        assert server.sent == ids and len(ids) == 6
        assert server.faults_injected == Counter(garbage=1)


def test_disconnect_and_end_faults_close_cleanly():
    faults = [Fault.disconnect(after=2, code=12), Fault.end(after=1)]
    with StreamServer(faults=faults, notices=0) as server:
        with Raw(server) as raw:
            msgs, clean = read_until_eof(raw)
        assert clean and raw.ended
        notice = json.loads(msgs[-1][1])
        assert notice["disconnect"]["code"] == 12 and notice["disconnect"]["reason"]
        assert sum(1 for k, m in msgs if m.startswith(b'{"created_at"')) == 2
        assert server.sent_notices == [notice]
        with Raw(server) as raw:
            msgs, clean = read_until_eof(raw)
        assert clean and len(msgs) == 1
        assert server.faults_injected == Counter(disconnect=1, end=1)
        assert len(server.sent) == 3


def test_faults_wait_for_an_accepted_connection_and_can_be_added():
    with StreamServer(faults=[Fault.end(after=0)], notices=0) as server:
        with Raw(server, credentials={**C, "consumer_secret": "nope"}) as raw:
            assert raw.status == 401
            assert json.loads(raw.body())["errors"][0]["code"] == 32
        assert len(server.pending_faults) == 1  # a refused request keeps the fault queued
        with Raw(server) as raw:
            assert read_until_eof(raw) == ([], True)
        server.add_faults(Fault.http(503), Fault.none(), Fault.end(after=1))
        assert requests.post(server.url + FILTER_PATH, data={"track": "a"}, auth=AUTH).status_code == 503
        with Raw(server) as raw:  # Fault.none(): a normal connection
            assert len(read_statuses(raw, 3)) == 3
        with Raw(server) as raw:
            msgs, clean = read_until_eof(raw)
            assert clean and len(msgs) == 1
        assert server.faults_injected == Counter(end=2, http=1)


def test_fault_plan_random_is_reproducible_and_serves():
    plan = FaultPlan.random(seed=9, count=12, kinds=("cut", "end", "garbage", "disconnect"),
                            max_after=5, oversized_size=4096)
    assert plan == FaultPlan.random(seed=9, count=12, kinds=("cut", "end", "garbage", "disconnect"),
                                    max_after=5, oversized_size=4096)
    assert len({f.kind for f in plan}) >= 3
    with StreamServer(faults=plan[:4], notices=0) as server:
        for fault in plan[:4]:
            with Raw(server, {"track": "python", "delimited": "length"}) as raw:
                if fault.kind == "garbage":
                    read_statuses(raw, fault.after, delimited=True)
                else:
                    read_until_eof(raw, delimited=True)
        assert eventually(lambda: sum(server.faults_injected.values()) == 4)
        assert server.faults_injected == Counter(f.kind for f in plan[:4])


# -- content ----------------------------------------------------------------------------
def test_unicode_escaped_like_twitter():
    with StreamServer(statuses=300, record_payloads=True, seed=8) as server:
        with Raw(server, {}, path=SAMPLE_PATH, method="GET") as raw:
            got = read_statuses(raw, 300)
        payloads = server.sent_payloads
    blob = b"".join(payloads.values())
    assert blob.isascii()
    assert b"\\ud83d" in blob  # emoji as UTF-16 surrogate pairs
    assert b"\\/" in blob and b"\\u003ca href=" in blob  # Twitter's slash and tag escapes
    texts = " ".join(s["text"] + s["user"]["name"] for s in got)
    for ch in ("é", "ñ", "😂"):
        assert ch in texts or any(ch in s.get("extended_tweet", {}).get("full_text", "") for s in got)
    assert any("\u3040" <= c <= "\u30ff" for c in texts)  # Japanese kana
    assert any("\u0600" <= c <= "\u06ff" for c in texts)  # Arabic


def test_generated_statuses_are_realistic():
    sts = generate_statuses(1000, seed=11)
    sizes = [len(json.dumps(s, separators=(",", ":"))) for s in sts]
    assert 3000 < sum(sizes) / len(sizes) < 5000
    ids = [s["id"] for s in sts]
    assert all(i > 2**60 for i in ids) and ids == sorted(ids) and len(set(ids)) == 1000
    for s in sts:
        assert s["id_str"] == str(s["id"])
        assert format_created_at(snowflake_ms(s["id"])) == s["created_at"]
        assert s["timestamp_ms"] == str(snowflake_ms(s["id"]))
        assert {"screen_name", "followers_count", "profile_image_url_https"} <= set(s["user"])
        text = s["text"]
        for tag in s["entities"]["hashtags"]:
            a, b = tag["indices"]
            assert text[a:b] == "#" + tag["text"]
    kinds = Counter()
    for s in sts:
        if "retweeted_status" in s:
            kinds["retweet"] += 1
            assert s["text"].startswith("RT @" + s["retweeted_status"]["user"]["screen_name"])
        elif s["is_quote_status"]:
            kinds["quote"] += 1
            assert s["quoted_status"]["id"] == s["quoted_status_id"]
        elif s["in_reply_to_status_id"]:
            kinds["reply"] += 1
            assert s["text"].startswith("@" + s["in_reply_to_screen_name"])
        if s["truncated"]:
            kinds["long"] += 1
            assert len(s["text"]) == 140 and s["text"].endswith("…")
            full = s["extended_tweet"]["full_text"]
            assert len(full) > 140 and s["extended_tweet"]["display_text_range"] == [0, len(full)]
        if s["coordinates"]:
            kinds["geo"] += 1
            lon, lat = s["coordinates"]["coordinates"]
            assert s["geo"]["coordinates"] == [lat, lon] and s["place"]["bounding_box"]
        if "extended_entities" in s or "extended_entities" in s.get("extended_tweet", {}):
            kinds["media"] += 1
    assert all(kinds[k] > 20 for k in ("retweet", "quote", "reply", "long", "geo", "media")), kinds
    langs = Counter(s["lang"] for s in sts)
    assert langs.most_common(1)[0][0] == "en" and {"es", "ja", "ar", "pt", "fr", "und"} <= set(langs)
    assert generate_statuses(5, seed=11) == sts[:5]


def test_notices_mixed_in():
    with StreamServer(statuses=800, notices=0.1, seed=12) as server:
        with Raw(server, {"track": "python", "stall_warnings": "true"}) as raw:
            objs = []
            for kind, msg in raw.messages():
                if kind == "message":
                    objs.append(json.loads(msg))
                if sum("created_at" in o for o in objs) == 800:
                    break
        sent = set(server.sent)
        notices = server.sent_notices
    got_notices = [o for o in objs if "created_at" not in o]
    assert got_notices == notices and 40 < len(notices) < 160
    kinds = Counter(next(iter(n)) for n in notices)
    assert {"delete", "limit"} <= set(kinds) and kinds["delete"] > kinds["limit"]
    deletes = [n["delete"]["status"] for n in notices if "delete" in n]
    assert sum(d["id"] in sent for d in deletes) > len(deletes) // 2
    assert all(d["id_str"] == str(d["id"]) for d in deletes)
    limits = [n["limit"]["track"] for n in notices if "limit" in n]
    assert limits == sorted(limits)


def test_warning_notices_only_with_stall_warnings():
    def warnings():
        return [n for n in server.sent_notices if "warning" in n]

    with StreamServer(notices=0.3, seed=13) as server:
        with Raw(server, {"track": "a", "stall_warnings": "true"}) as raw:
            read_statuses(raw, 1500)
        server.stop()  # freeze what was sent on that connection
        first = warnings()
        assert first and all(w["warning"]["code"] == "FALLING_BEHIND" for w in first)
        assert all(w["warning"]["percent_full"] >= 60 for w in first)
    with StreamServer(notices=0.3, seed=13) as server:
        with Raw(server, {"track": "a"}) as raw:
            read_statuses(raw, 1500)
        assert len(server.sent_notices) > 100 and not warnings()


# -- speed, rate, lifecycle -----------------------------------------------------------------
def test_throughput_measured_and_rate_sustained():
    n = 100_000
    with StreamServer(statuses=n, check_auth=False) as server:
        with Raw(server, {"track": ",".join(TRACK)}, sign=False) as raw:
            t0 = time.perf_counter()
            total = len(raw.buf)
            buf = bytearray(1 << 20)
            raw.sock.settimeout(0.05)  # the last batch may be read before the server records it
            while not server.wait_sent(n, 0):
                try:
                    total += raw.sock.recv_into(buf)
                except TimeoutError:
                    pass
            dt = time.perf_counter() - t0
    print(f"\nStreamServer throughput: {n / dt:,.0f} statuses/s, {total / dt / 1e6:,.0f} MB/s "
          f"({total / n:,.0f} B/status on the wire)")
    with StreamServer(rate=100, notices=0) as server:
        with Raw(server) as raw:
            got = read_statuses(raw, 60)
        times = [snowflake_ms(s["id"]) for s in got]
    measured = (len(times) - 1) / ((times[-1] - times[0]) / 1000)
    assert 50 < measured < 200, measured


def test_stop_is_prompt_with_stalled_and_non_reading_clients():
    server = StreamServer(faults=[Fault.stall(after=0, seconds=30)]).start()
    stalled = Raw(server)
    idle = socket.create_connection(("127.0.0.1", server.port))  # never sends a request
    flood = Raw(server)  # never reads: the server blocks in send()
    time.sleep(0.3)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 1.0
    assert not server.running
    for s in (stalled, flood):
        s.close()
    idle.close()


def test_serve_forever_returns_when_stopped_from_another_thread():
    server = StreamServer(statuses=1)
    runner = threading.Thread(target=server.serve_forever, name="test-serve-forever")
    runner.start()
    assert eventually(lambda: server.running)
    with Raw(server) as raw:
        assert len(read_statuses(raw, 1)) == 1
    server.stop()
    runner.join(2)
    assert not runner.is_alive()


def test_concurrent_connections_share_unique_increasing_ids():
    # rate= per connection keeps one connection from taking the whole budget
    with StreamServer(statuses=600, rate=1000, notices=0) as server:
        results = {}

        def worker(i):
            with Raw(server, {"track": "python"}) as raw:
                msgs, _ = read_until_eof(raw)
                results[i] = [json.loads(m)["id"] for k, m in msgs if k == "message"]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        assert server.wait_sent(600, 10)
        server.stop()  # the server closes the connections; clients read to EOF
        for t in threads:
            t.join(10)
    assert len(results) == 3 and all(results.values())
    all_ids = [i for ids in results.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 600
    assert sorted(all_ids) == sorted(server.sent)
    assert all(ids == sorted(ids) for ids in results.values())
