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
