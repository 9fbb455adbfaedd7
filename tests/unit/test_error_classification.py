"""errors.classify on real driver exceptions: transient ones are retried, permanent ones not."""

from __future__ import annotations

import sqlite3

import pytest

from onceflow.extract.classify import classify


def _raised(fn) -> BaseException:
    try:
        fn()
    except Exception as error:
        return error
    raise AssertionError("expected an exception")


def _check(error: BaseException, transient: bool, label: str) -> str:
    result = classify(error, "src.t")
    message = str(result)
    assert result.transient is transient, message
    assert message.startswith("src.t: ") and label in message, message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        RuntimeError("Deadlock found when trying to get lock; try restarting transaction"),
        RuntimeError("SSL SYSCALL error: server closed the connection unexpectedly"),
    ],
)
def test_plain_transient_errors(error):
    _check(error, True, "transient")


def test_sqlite_missing_table_and_column_are_permanent():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER)")
    _check(_raised(lambda: conn.execute("SELECT * FROM nope")), False, "table not found")
    _check(_raised(lambda: conn.execute("SELECT nope FROM t")), False, "column not found")


def test_redacts_url_passwords():
    error = RuntimeError("could not connect to postgresql://app:s3cr3t-pw@db:5432/x: refused")
    message = _check(error, True, "transient")
    assert "s3cr3t-pw" not in message


def test_a_rust_backtrace_and_colours_are_cut_from_library_messages():
    from onceflow.errors import plain_message

    text = (
        "Kernel error: Json error: unexpected 'g'\n\n   0: <unknown>\n   1: <unknown>\n"
        "  12: start_thread at ./nptl/pthread_create.c:442:8\n"
    )
    assert plain_message(text) == "Kernel error: Json error: unexpected 'g'"
    assert plain_message("a \x1b[31m↳\x1b[0m b\nStack backtrace:\n   0: x") == "a ↳ b"
    assert plain_message("Binder Error: x\n\nLINE 1: y") == "Binder Error: x\n\nLINE 1: y"


# what PyO3 raises for a Rust panic (ConnectorX, delta-rs): a BaseException, not an Exception
PanicException = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})


def test_a_driver_panic_is_a_permanent_one_line_source_error():
    from onceflow.errors import is_panic

    panic = PanicException(
        "Could not retrieve `Option<NaiveDate>`: Couldn't convert the value "
        "`Date(\"'0000-00-00'\")` to a desired type\nStack backtrace:\n   0: <unknown>"
    )
    assert is_panic(panic)
    assert not is_panic(KeyboardInterrupt()) and not is_panic(RuntimeError("panic"))
    message = _check(panic, False, "the source driver failed (a panic)")
    assert "0000-00-00" in message and "backtrace" not in message


def test_a_refused_connection_answers_to_connection_error_in_retry_on() -> None:
    # the driver's error is re-raised as SourceError (its message may hold a secret):
    # `retry_on: [ConnectionError]` must still match it, and `[TimeoutError]` a timeout
    from onceflow.errors import error_names
    from onceflow.schedule.retry import RetryPolicy

    refused = classify(
        RuntimeError('connection to server at "127.0.0.1", port 1 failed: Connection refused'),
        "src.t",
    )
    names = error_names(refused)
    assert names[:4] == ("TransientError", "SourceError", "OnceflowError", "Exception")
    assert {"ConnectionError", "OSError"} <= set(names) and "TimeoutError" not in names
    assert RetryPolicy(retry_on=["ConnectionError"]).is_retryable(names)
    slow = error_names(classify(TimeoutError("read timed out"), "src.t"))
    assert "TimeoutError" in slow and "ConnectionError" not in slow
    assert not RetryPolicy(retry_on=["ConnectionError"]).is_retryable(slow)


def _pymysql_error(code: int, text: str, sqlstate: str) -> BaseException:
    import pymysql.err

    return pymysql.err.OperationalError(code, text, sqlstate=sqlstate)


def test_a_mysql_access_denied_to_a_database_is_labelled_access_not_syntax():
    """pymysql gives the server's SQLSTATE, 42000 for a syntax error and for an access
    denied alike: the error code says which (1044 here), so it comes first."""
    error = _pymysql_error(1044, "Access denied for user 'u'@'%' to database 'shop'", "42000")
    _check(error, False, "src.t: access denied to database: ")
    denied = _pymysql_error(1142, "SELECT command denied to user 'u'@'h' for table 't'", "42000")
    _check(denied, False, "src.t: permission denied: ")
    syntax = _pymysql_error(1064, "You have an error in your SQL syntax", "42000")
    _check(syntax, False, "src.t: SQL syntax error: ")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Access denied for user 'u'@'%' to database 'shop'", "access denied to database"),
        ("SELECT command denied to user 'u'@'h' for table 't'", "permission denied"),
        ("Access denied for user 'u'@'h' (using password: YES)", "authentication failed"),
    ],
)
def test_an_access_error_without_its_code_is_labelled_by_its_text(text, label):
    _check(RuntimeError(text), False, f"src.t: {label}")


@pytest.mark.parametrize(
    "text",
    [
        'connection to server at "db", port 5432 failed: FATAL:  invalid value for parameter '
        '"statement_timeout": "abc"',
        'connection to server failed: FATAL:  unrecognized configuration parameter "bogus"',
        'invalid integer value "abc" for connection option "connect_timeout"',
    ],
)
def test_a_bad_setting_in_the_source_url_is_permanent_not_a_timeout(text):
    """`statement_timeout` in the message matched "timeout": the table was retried, the
    same refusal each time."""
    _check(
        RuntimeError(f"IO: [libpq] Failed to connect: {text}"), False, "invalid connection setting"
    )


def test_a_timeout_is_still_transient():
    _check(RuntimeError("canceling statement due to lock timeout"), True, "transient")
    _check(RuntimeError("ReadTimeout: the read timed out"), True, "transient")
