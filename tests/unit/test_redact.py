from __future__ import annotations

from onceflow.redact import redact, register_url


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
