"""Security: planted secrets never escape; TLS checked by default; no plain http off-machine;
one message's size capped; output paths stay inside the chosen folder.

The secrets test plants unique credentials, runs captures that succeed and fail (HTTP 401,
wrong secrets), the CLI and a notebook, with every logger at DEBUG (``streamkit``,
``urllib3``, ``requests``, ``oauthlib``, ...), and then searches everything written or
shown -- log records, reprs, exception texts and tracebacks, CLI output, the notebook's
outputs and metadata, and every file of the datasets (the raw bytes, and the decoded
Parquet columns and metadata) -- for each secret and for any 10-character piece of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import traceback
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamkit
from streamkit import cli
from streamkit.collect import default_path
from streamkit.framing import DEFAULT_MAX_MESSAGE_BYTES
from streamkit.testing import Fault, StreamServer

FAST = dict(timeout=1.0, retry_time=0.05, retry_420=0.1, snooze_time=0.02, flush_seconds=0.2,
            progress=False)
LOGGERS = ("", "streamkit", "urllib3", "requests", "requests_oauthlib", "oauthlib")


def planted() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {
        "consumer_key": f"ck{tag}PLANTEDkey",
        "consumer_secret": f"cs{tag}PLANTEDsecret",
        "access_token": f"at{tag}PLANTEDtoken",
        "access_token_secret": f"ts{tag}PLANTEDtokensecret",
        "bearer_token": f"bt{tag}PLANTEDbearer",
    }


def pieces(secret: str, size: int = 10) -> set[str]:
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    found = []
    for name, secret in secrets.items():
        hit = next((p for p in pieces(secret) if p in text), None)
        if hit is not None:
            i = text.index(hit)
            found.append(f"{name}: ...{text[max(0, i - 120):i + 40]!r}...")
    return found


def everything_in(folder: Path) -> str:
    """Every file's bytes, and for Parquet files their decoded rows and metadata too."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out.append(data.decode("utf-8", "replace"))
        if path.suffix == ".parquet":
            f = pq.ParquetFile(path)
            out.append(repr(f.metadata.metadata) + repr(f.schema_arrow.metadata))
            out.append(str(f.read().to_pylist()))
    return "\n".join(out)


def make_auth(creds: dict[str, str], **wrong: str) -> streamkit.OAuthHandler:
    c = {**creds, **wrong}
    auth = streamkit.OAuthHandler(c["consumer_key"], c["consumer_secret"])
    auth.set_access_token(c["access_token"], c["access_token_secret"])
    return auth


@pytest.fixture
def debug_logs():
    """Every log record of the client side at DEBUG, whoever emits it."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # The test server verifies signatures on its own threads: it is the other side.
            if not record.threadName.startswith("streamkit-testing"):
                records.append(record)

    handler = Keep(level=logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)  # includes exc_info tracebacks


def test_planted_secrets_never_escape(tmp_path, debug_logs, monkeypatch, capsys):
    creds = planted()
    wrong = {"consumer_secret": f"cs{uuid.uuid4().hex}WRONGsecret"}
    shown: list[str] = []
    # After a first good connection: a transient 401, a 503, a cut and garbage.
    faults = [Fault.cut(after=20), Fault.http(401), Fault.http(503), Fault.garbage(after=5),
              Fault.cut(after=30)]
    with StreamServer(credentials=creds, faults=faults, pool_size=300, rate=2000) as server:
        auth = make_auth(creds)
        shown += [repr(auth), repr(auth.apply_auth())]
        c = streamkit.collect(track=["python"], auth=auth, base_url=server.url, path=tmp_path / "good", **FAST)
        try:
            assert c.wait_for(stored=150, timeout=30), c.stats
            shown += [repr(c), c._repr_html_(), repr(c.stats), str(c.stats.as_dict()), repr(c._stream)]
        finally:
            c.stop()
        assert c.stats.state == "stopped" and c.stats.http_errors == 2
        shown += [repr(c), str(c.stats.as_dict())]

        # Wrong secret: the capture fails with a 401; its error says so, not the secret.
        bad = streamkit.collect(track=["python"], auth=make_auth(creds, **wrong), base_url=server.url,
                                path=tmp_path / "bad", **FAST)
        assert bad.wait(20)
        assert bad.stats.state == "failed" and isinstance(bad.exception, streamkit.AuthError)
        shown += [repr(bad), str(bad.stats.as_dict()), str(bad.exception), repr(bad.exception),
                  "".join(traceback.format_exception(bad.exception))]
        # ... and a synchronous stream raises it, with a traceback.
        stream = streamkit.Stream(make_auth(creds, **wrong), streamkit.StreamListener(), base_url=server.url)
        with pytest.raises(streamkit.AuthError) as raised:
            stream.filter(track=["python"])
        shown += ["".join(traceback.format_exception(raised.value)), repr(stream)]
        shown.append(repr(streamkit.BearerTokenHandler(creds["bearer_token"])))

        # The command line, with credentials from the environment, at -vv (DEBUG).
        for name, value in creds.items():
            monkeypatch.setenv(f"STREAMKIT_{name.upper()}", value)
        code = cli.main(["collect", "--track", "python", "--base-url", server.url, "-vv",
                         "--out", str(tmp_path / "cli"), "--duration", "1", "--flush-seconds", "0.2"])
        assert code == 0
        monkeypatch.setenv("STREAMKIT_CONSUMER_SECRET", wrong["consumer_secret"])
        code = cli.main(["collect", "--track", "python", "--base-url", server.url, "-vv",
                         "--out", str(tmp_path / "cli-bad"), "--duration", "5"])
        assert code == 1
        monkeypatch.delenv("STREAMKIT_ACCESS_TOKEN")
        with pytest.raises(streamkit.ConfigError) as missing:
            streamkit.auth_from_env()
        shown.append(str(missing.value))
    out = capsys.readouterr()
    shown += [out.out, out.err]
    assert "HTTP 401" in out.err

    secrets = {**creds, **wrong}
    logs = log_text(debug_logs)
    assert "Starting new HTTP connection" in logs  # urllib3's DEBUG lines were captured
    assert not leaks(logs, secrets), leaks(logs, secrets)
    assert not leaks("\n".join(shown), secrets), leaks("\n".join(shown), secrets)
    files = everything_in(tmp_path)
    assert "streamkit.json" in {p.name for p in tmp_path.rglob("*")} and len(files) > 10_000
    assert not leaks(files, secrets), leaks(files, secrets)
    print(f"\nreliability: security: {len(secrets)} planted secrets, {len(debug_logs)} DEBUG log "
          f"records, {len(files):,} characters of dataset files searched; 0 found")


NOTEBOOK = [
    "import logging, os, streamkit\n"
    "logging.basicConfig(level=logging.DEBUG, force=True)\n"
    "c = streamkit.collect(track=['python'], base_url=os.environ['SK_URL'], path=os.environ['SK_PATH'],\n"
    "                      flush_seconds=0.2, timeout=1.0, retry_time=0.05)\n"
    "c.wait_for(stored=50, timeout=30)\n"
    "c",
    "c.stats",
    "streamkit.auth_from_env()",
    "c.stop()\nprint(repr(c), c.stats.as_dict())\nc",
    "os.environ['STREAMKIT_CONSUMER_SECRET'] = os.environ['SK_WRONG']\n"
    "bad = streamkit.collect(track=['python'], base_url=os.environ['SK_URL'],\n"
    "                        path=os.environ['SK_PATH'] + '-bad', timeout=1.0)\n"
    "bad.wait(20)\n"
    "raise bad.exception",
]


def test_planted_secrets_never_reach_notebook_outputs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    creds = planted()
    wrong = f"cs{uuid.uuid4().hex}WRONGsecret"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in NOTEBOOK])
    nb.cells[-1].metadata["tags"] = ["raises-exception"]
    source, out = tmp_path / "planted.ipynb", tmp_path / "planted-out.ipynb"
    nbformat.write(nb, source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMKIT_")}
    env.update({f"STREAMKIT_{k.upper()}": v for k, v in creds.items()})
    with StreamServer(credentials=creds, pool_size=300, rate=1000) as server:
        env.update(SK_URL=server.url, SK_PATH=str(tmp_path / "nb"), SK_WRONG=wrong)
        script = (
            "import sys, nbformat, nbclient\n"
            "nb = nbformat.read(sys.argv[1], as_version=4)\n"
            "nbclient.NotebookClient(nb, timeout=120, kernel_name='python3').execute()\n"
            "nbformat.write(nb, sys.argv[2])\n"
        )
        proc = subprocess.run([sys.executable, "-c", script, str(source), str(out)],
                              capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = out.read_text()
    cells = json.loads(executed)["cells"]
    assert any(o.get("output_type") == "error" and o["ename"] == "AuthError" for o in cells[-1]["outputs"])
    assert "DEBUG" in executed  # the kernel's DEBUG logging reached the outputs
    secrets = {**creds, "wrong": wrong}
    assert not leaks(executed + proc.stdout + proc.stderr, secrets)
    assert not leaks(everything_in(tmp_path / "nb"), secrets)


# -- TLS --------------------------------------------------------------------------------------


def _read_request(sock: ssl.SSLSocket) -> bytes:
    """The request head and its body (by Content-Length), so that the answer does not cut it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class TLSServer:
    """A TLS endpoint on 127.0.0.1 with a self-signed certificate; answers 503 to any request."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.refused = 0
        self.closing = False
        self.thread = threading.Thread(target=self._serve, name="tls-test-server", daemon=True)

    def _serve(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        self.requests.append(_read_request(tls))
                        tls.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except (ssl.SSLError, OSError):
                    self.refused += 1  # the client would not talk to this certificate

    def __enter__(self) -> TLSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        self.thread.join(5)
        self.sock.close()
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def _attempt(url: str, **options) -> streamkit.Stream:
    creds = planted()
    stream = streamkit.Stream(make_auth(creds), streamkit.StreamListener(), base_url=url,
                              retry_time=5.0, snooze_time=5.0, **options)
    stream.filter(track=["python"], is_async=True)
    return stream


def _until(predicate, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return predicate()


def test_tls_certificates_are_verified_by_default(certificate):
    cert, key = certificate
    with TLSServer(cert, key) as server:
        stream = _attempt(server.url)
        try:
            assert _until(lambda: stream.stats.network_errors >= 1)
        finally:
            stream.disconnect()
        assert stream.verify is True
        assert server.requests == [] and server.refused >= 1, "the request went to an unverified server"
        assert "SSLError" in stream.stats.last_error
        # With the certificate as the trusted CA the same server is accepted, silently.
        stream = _attempt(server.url, verify=str(cert))
        try:
            assert _until(lambda: stream.stats.http_errors >= 1)
        finally:
            stream.disconnect()
        assert server.requests and server.requests[0].startswith(b"POST /1.1/statuses/filter.json")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_turning_tls_verification_off_warns_loudly(certificate, tmp_path):
    cert, key = certificate
    with TLSServer(cert, key) as server:
        with pytest.warns(RuntimeWarning, match="TLS certificate verification is OFF"):
            stream = _attempt(server.url, verify=False)
        try:
            assert _until(lambda: stream.stats.http_errors >= 1)
        finally:
            stream.disconnect()
        assert server.requests  # it did connect, as asked
        with pytest.warns(RuntimeWarning, match="anyone on the network path can read the credentials"):
            c = streamkit.Collector(track=["python"], auth=make_auth(planted()), base_url=server.url,
                                    path=tmp_path / "x", verify=False)
        del c  # never started


# -- plain http, message size, paths ------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://stream.twitter.com", "http://example.org:8080", "http://10.0.0.1", "http://192.168.1.5",
    "http://127.0.0.1.nip.io", "http://localhost.example.com", "http://0x7f000001", "http://2130706433",
    "http://[::ffff:10.0.0.1]", "HTTP://EXAMPLE.ORG", "http://user:pw@127.0.0.1",
    "http://example.org#@127.0.0.1", "ftp://127.0.0.1", "//example.org",
])
def test_plain_http_is_refused_off_this_machine(url, capsys):
    auth = make_auth(planted())
    with pytest.raises(streamkit.ConfigError):
        streamkit.Stream(auth, streamkit.StreamListener(), base_url=url)
    with pytest.raises(streamkit.ConfigError):
        streamkit.Collector(track=["x"], auth=auth, base_url=url, path="never-created")
    assert not Path("never-created").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "http://127.3.2.1"])
def test_plain_http_is_accepted_for_loopback(url):
    stream = streamkit.Stream(make_auth(planted()), streamkit.StreamListener(), base_url=url)
    assert stream.base_url == url.rstrip("/")


def test_the_cli_refuses_plain_http_off_this_machine(monkeypatch, capsys, tmp_path):
    for name, value in planted().items():
        monkeypatch.setenv(f"STREAMKIT_{name.upper()}", value)
    code = cli.main(["collect", "--track", "x", "--base-url", "http://example.org", "--out", str(tmp_path / "x")])
    assert code == 2 and "refusing plain http:// to example.org" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_one_message_is_capped_and_the_stream_goes_on(tmp_path):
    assert streamkit.Stream(make_auth(planted()), streamkit.StreamListener()).max_message_bytes \
        == DEFAULT_MAX_MESSAGE_BYTES == 4 * 1024 * 1024
    huge = DEFAULT_MAX_MESSAGE_BYTES + 2 * 1024 * 1024  # 6 MiB on one line
    creds = planted()
    faults = [Fault.garbage(after=50, kind="oversized", size=huge)]
    with StreamServer(credentials=creds, statuses=150, faults=faults, notices=0, pool_size=300) as server:
        with streamkit.collect(track=["python"], auth=make_auth(creds), base_url=server.url,
                               path=tmp_path / "cap", **FAST) as c:
            assert c.wait_for(stored=150, timeout=30), c.stats
        sent = server.sent
    s = c.stats
    assert s.rejected == {"oversized": 1} and s.reconnects == 0
    assert sorted(streamkit.read(tmp_path / "cap")["id"]) == sorted(sent)
    assert s.bytes > huge  # it was read (and dropped as it came), not refused by the server


_names = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["..", "../..", "/", "/etc/passwd", "..\\..\\windows", "~", "~root", ".", "a/../../b", "\x00", "C:\\x",
     "$(rm -rf)", "%2e%2e%2f", "\u202e", "\uff0e\uff0e\uff0f"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_names, max_size=5) | _names, st.lists(_names | st.integers(0, 2**64), max_size=3))
def test_paths_from_a_filter_never_leave_the_data_folder(track, follow):
    root = Path("/srv/captures")
    path = default_path(track=track, follow=follow or None, locations=None, root=root)
    assert path.parent == root
    name = path.name
    assert name not in ("", ".", "..") and len(name.encode()) <= 80
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name), name
    assert (root / name).resolve().is_relative_to(root.resolve())
