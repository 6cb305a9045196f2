"""Finding 8: token hygiene. An empty token turned auth off; the client sent the token with every
call, to any host, in clear text; the matches' paths went to anyone. No flow needed here."""

import pytest

from executors.auth import TokenError, paths_allowed, require_usable_token
from imgsearch.token_policy import TokenNotSent, is_local, needs_token, with_token

TOKEN = "t0ken-for-rules"


def test_an_empty_token_is_a_start_up_error(monkeypatch):
    for bad in ("", "   ", "\n", f"{TOKEN}\n"):
        with pytest.raises(TokenError):
            require_usable_token({"IMGSEARCH_TOKEN": bad})
    require_usable_token({})  # unset: no token, loopback only
    require_usable_token({"IMGSEARCH_TOKEN": TOKEN})
    # Through a real executor's constructor (every stage is a Stage).
    from executors.loader.executor import ImageLoader

    monkeypatch.setenv("IMGSEARCH_TOKEN", "")
    with pytest.raises(TokenError, match="set but empty"):
        ImageLoader()


def test_paths_go_to_token_holders_or_where_the_operator_opens_them():
    env = {"IMGSEARCH_TOKEN": TOKEN}
    assert not paths_allowed({}, env)
    assert not paths_allowed({"token": "wrong"}, env)
    assert not paths_allowed({"with_paths": True}, env)
    assert paths_allowed({"token": TOKEN}, env)
    assert paths_allowed({}, {})  # no token on the server: a loopback-only flow, its user's own
    assert paths_allowed({}, {**env, "IMGSEARCH_PATHS_FOR_ALL": "1"})
    assert not paths_allowed({}, {**env, "IMGSEARCH_PATHS_FOR_ALL": "maybe"})  # unreadable: closed


def test_the_client_sends_the_token_only_where_it_is_needed():
    host = "grpc://127.0.0.1:5000"
    assert "token" not in with_token(host, "/search", {"top_k": 3}, TOKEN, {})
    assert "token" not in with_token(host, "/info", {}, TOKEN, {"IMGSEARCH_TOKEN_FOR_SEARCH": "1"})
    assert "token" not in with_token(host, "/count", {}, TOKEN, {})
    assert with_token(host, "/search", {"with_paths": True}, TOKEN, {})["token"] == TOKEN
    assert with_token(host, "/index", {}, TOKEN, {})["token"] == TOKEN
    assert with_token(host, "/count", {}, TOKEN, {"IMGSEARCH_TOKEN_FOR_SEARCH": "1"})["token"] == TOKEN
    assert "token" not in with_token(host, "/index", {}, "", {})  # no token: nothing to send
    assert needs_token("/stored_paths", None, {}) and not needs_token("/stats", None, {})


@pytest.mark.parametrize("host", ["grpc://10.0.0.5:8080", "10.0.0.5:8080", "grpc://gateway.example:443", "grpc://[2001:db8::1]:8080"])
def test_no_token_in_clear_text_to_another_machine(host):
    with pytest.raises(TokenNotSent, match="grpcs://"):
        with_token(host, "/index", {}, TOKEN, {})
    assert "token" not in with_token(host, "/search", {}, TOKEN, {})  # not needed: nothing refused
    # Wanted for paths only: the search goes on without the token (and its paths).
    assert "token" not in with_token(host, "/search", {"with_paths": True}, TOKEN, {})
    with pytest.raises(TokenNotSent):  # needed: the server wants it for every search
        with_token(host, "/search", {}, TOKEN, {"IMGSEARCH_TOKEN_FOR_SEARCH": "1"})
    assert with_token(host, "/index", {}, TOKEN, {"IMGSEARCH_ALLOW_PLAINTEXT_TOKEN": "1"})["token"] == TOKEN
    tls = "grpcs://" + host.split("://")[-1]
    assert with_token(tls, "/index", {}, TOKEN, {})["token"] == TOKEN


def test_loopback_is_local():
    for host in ("grpc://127.0.0.1:1", "127.0.0.2:1", "grpc://localhost:9", "grpc://[::1]:9"):
        assert is_local(host), host
    for host in ("grpc://0.0.0.0:1", "grpc://192.168.1.2:1", "grpc://localhost.evil.example:1"):
        assert not is_local(host), host
