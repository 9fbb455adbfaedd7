from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from onceflow.redact import mask_url, quote_credentials, redact, register_url


def test_url_passwords_are_masked() -> None:
    text = "could not connect to postgresql://app:hunter22@db:5432/shop"
    assert redact(text) == "could not connect to postgresql://app:***@db:5432/shop"


def test_key_value_passwords_are_masked() -> None:
    assert "topsecret" not in redact("host=db password=topsecret user=x")


def test_registered_secret_is_masked_anywhere() -> None:
    register_url("mysql://u:Zq9-unique-pw@h/db")
    assert redact("Access denied (using password: Zq9-unique-pw)") == (
        "Access denied (using password: ***)"
    )


def test_password_with_an_at_sign_is_masked_whole() -> None:
    url = "postgresql://bob:p@ss:w/rd@db:5432/x"
    register_url(url)
    assert redact(f"connect to {url} failed") == "connect to postgresql://bob:***@db:5432/x failed"
    assert "p@ss:w/rd" not in redact("server said: bad password p@ss:w/rd")


def test_percent_encoded_password_is_masked_in_its_decoded_form_too() -> None:
    register_url("mysql://u:s3cr%40t-Xq9@h/db")
    assert redact("Access denied for u (using password s3cr@t-Xq9)") == (
        "Access denied for u (using password ***)"
    )


def test_tracebacks_in_text_logs_are_redacted(capsys: object) -> None:
    import logging

    from onceflow.logs import setup_logging

    register_url("postgresql://app:tr4ceb4ck-pw@h/db")
    setup_logging("INFO", "text")
    try:
        raise RuntimeError("could not use tr4ceb4ck-pw")
    except RuntimeError:
        logging.getLogger("onceflow.test").exception("failed")
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "RuntimeError" in err and "tr4ceb4ck-pw" not in err


@pytest.mark.parametrize(
    ("url", "password"),
    [
        # raw '@' then '#' or '?': a strict parser ends the authority early, and the driver
        # tried the host 'corpnet', a piece of the password, and printed it
        ("mysql://u:Tr0ub4dor@corpnet#2024@127.0.0.1:3306/db", "Tr0ub4dor@corpnet#2024"),
        ("mysql://u:p@ss#w%rd:/?Zq@host/db", "p@ss#w%rd:/?Zq"),
        ("postgresql://u:x@pgcorp?x=1@host:5432/db", "x@pgcorp?x=1"),
        ("postgresql://u:p@[::1]:5432/db", "p"),
        ("postgresql://u:p%40q@host/db", "p@q"),
        # a '@' in the path or query after the host is not the password's end
        ("postgresql://u:p@host/db?sslrootcert=/a@b/c.pem", "p"),
        ("postgresql://u:p@host?sslmode=require", "p"),
        ("postgresql://u:p@host", "p"),
        # a URL with no path whose query holds '@': the host with a port is the host
        ("postgresql://u:pw@127.0.0.1:5432?dbname=test&application_name=etl@corp", "pw"),
        ("mysql://u:p@host:3306?ssl_ca=/etc/a@b/ca.pem", "p"),
        ("oracle+oracledb://u:p@ora:1521/?service_name=x@y", "p"),
        ("mysql://u:Tr0ub4dor@corpnet#2024@127.0.0.1:3306", "Tr0ub4dor@corpnet#2024"),
        ("postgresql://u:p@ss@h1:5432,h2:5433/db", "p@ss"),  # libpq's several hosts
    ],
    ids=[
        *("at-hash", "at-hash-slash-query", "at-query", "ipv6", "encoded"),
        *("query-at", "query", "no-path", "no-path-query-at", "no-path-query-slash-at"),
        *("oracle-query-at", "at-hash-no-path", "several-hosts"),
    ],
)
def test_a_raw_password_reaches_the_driver_whole(url: str, password: str) -> None:
    assert urlsplit(quote_credentials(url)).password is not None
    assert unquote(urlsplit(quote_credentials(url)).password or "") == password


def test_urls_without_credentials_are_left_alone() -> None:
    for url in ("sqlite:////tmp/a@b/x.db", "sqlite:///rel@x/a.db", "postgresql://host/db"):
        assert quote_credentials(url) == url


def test_a_host_like_piece_of_a_password_is_masked_too() -> None:
    register_url("mysql://u:Tr0ub4dor@corpnetz#2024@127.0.0.1:3306/db")
    shown = redact("Can't connect to MySQL server on 'corpnetz' (-2)")
    assert "corpnetz" not in shown


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:Sp4ce Pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:Quo'te\"Pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///a/b.db", "sqlite:///a/b.db"),
    ],
    ids=["space", "quotes", "no-password", "no-credentials"],
)
def test_mask_url_masks_a_password_a_pattern_cannot_delimit(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_key_value_secrets_beyond_passwords_are_masked_but_not_counts_named_like_them() -> None:
    """A custom rule's `SET s3_secret_access_key = '...'` showed in the HTML report's SQL."""
    assert redact("SET s3_secret_access_key = 'AbC123'") == "SET s3_secret_access_key=***"
    assert (
        redact("s3://b/k?s3_secret_access_key=xyz&region=eu")
        == "s3://b/k?s3_secret_access_key=***&region=eu"
    )
    assert redact("auth_token=abc; api_key=k1") == "auth_token=***; api_key=***"
    for kept in ("token_count = 0", "secret_count = 3", "max_tokens=5", "host=x port=5"):
        assert redact(kept) == kept
