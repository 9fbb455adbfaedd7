"""warehouse.write_problem_cause: which failed writes are the machine's (fixed where the
table lives, not in the data), read from delta-rs's text across the exception chain."""

from __future__ import annotations

import errno

import pytest

from onceflow.warehouse import write_problem, write_problem_cause


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Unable to copy data to file: No space left on device (os error 28)", "disk full"),
        ("Unable to copy data to file: Disk quota exceeded (os error 122)", "disk quota exceeded"),
        (
            "Unable to open file x/1.json#1: Read-only file system (os error 30)",
            "read-only file system",
        ),
        (
            "[Errno 13] Failed to open local file 'x'. Detail: [errno 13] Permission denied",
            "no permission",
        ),
        # `chattr +i` on the table folder, as delta-rs and Arrow say it
        (
            "Unable to open file /wh/t/part-0.parquet#1: Operation not permitted (os error 1)",
            "not permitted",
        ),
        (
            "[Errno 1] Failed to open local file 'x'. Detail: [errno 1] Operation not permitted",
            "not permitted",
        ),
        # a file where the warehouse folder should be: Rust's Debug form of the io::Error
        (
            "Could not create local directory: /wh/t: Error: Os { code: 20, kind: "
            'NotADirectory, message: "Not a directory" }',
            "not a folder",
        ),
        (
            "[Errno 21] Is a directory: '/wh/t/_delta_log/00000000000000000001.json'",
            "a folder in the way",
        ),
    ],
)
def test_a_write_the_machine_refused_is_named(text: str, problem: str) -> None:
    found = write_problem_cause(OSError(text))
    assert found is not None and found[0] == problem


@pytest.mark.parametrize(
    "text",
    ["Schema error: cannot cast Utf8 to Int64", "process exited with code: 1", "error 13 rows"],
)
def test_a_write_the_data_broke_is_not_the_machines(text: str) -> None:
    assert write_problem_cause(RuntimeError(text)) is None


def test_an_errno_under_a_library_error_is_found_across_the_chain() -> None:
    try:
        try:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        except OSError as cause:
            raise RuntimeError("file metadata is only available after writer close") from cause
    except RuntimeError as error:
        found = write_problem_cause(error)
    assert found is not None and found[0] == "not permitted"
    assert isinstance(found[1], PermissionError)


@pytest.mark.parametrize(
    ("text", "coarse"),
    [
        ("Disk quota exceeded (os error 122)", "disk full"),
        ("Operation not permitted (os error 1)", "no permission"),
        ("Read-only file system (os error 30)", "read-only file system"),
        # the quarantine maps these three to a fix; a path in the way is left as it came
        ("Not a directory (os error 20)", None),
    ],
)
def test_write_problem_keeps_to_its_three_words(text: str, coarse: str | None) -> None:
    assert write_problem(OSError(text)) == coarse


def test_a_table_the_machine_will_not_open_is_not_called_damaged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opening it (a folder it may not read) said "If a file of its _delta_log is
    damaged, restore it", and the failure used up the file's retries."""
    import deltalake

    from onceflow.errors import LoadError
    from onceflow.warehouse import open_table

    def refused(*_args: object, **_kw: object) -> bool:
        raise OSError("Generic LocalFileSystem error: Operation not permitted (os error 1)")

    monkeypatch.setattr(deltalake.DeltaTable, "is_deltatable", staticmethod(refused))
    with pytest.raises(LoadError) as raised:
        open_table("/wh/t")
    assert "not permitted" in str(raised.value) and "_delta_log" not in str(raised.value)
    assert raised.value.context.get("environment") is True
