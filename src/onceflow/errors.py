"""The onceflow exception hierarchy: the CLI turns any of these into one clear line.

    OnceflowError                 exit 1 (the base; `context` holds what it is about)
    ├── ConfigError               exit 2: a bad config field or option (`field`)
    ├── StateError                the state store is unreachable, corrupt, or refused a write
    │   ├── TransitionError       an illegal or stale scheduled-run transition (`run_id`)
    │   └── LeaseLostError        a job's lease expired and it was claimed again (`job_id`)
    ├── LockError                 a lock is held by someone else, or was lost (`lock`)
    ├── SourceError               a source database failed (`transient`: retrying may help)
    ├── ExtractError              writing or verifying an extracted file failed
    ├── LoadError                 loading a file into a Delta table failed (table untouched;
    │   │                         `bad_rows`: the file's rows are at fault, e.g. a NULL key)
    │   └── GateError             a pre-load rule refused the file (`table`, `rules`)
    ├── ValidateError             the data to validate cannot be read (`table`): a missing
    │                             table, an empty folder. A rule that cannot run is not an
    │                             exception: its outcome is `error` and the others still run
    ├── ReportError               exit 2: a report file could not be written (`path`); the
    │                             validation it holds (`report`) is complete and stored
    ├── StuckRunError             a scheduled run ran past its `max_runtime` (its lease revoked)
    ├── WorkerLostError           a scheduled run's worker was lost (its job's lease expired)
    │                             once more than its retry budget allows
    └── BlockedRunError           a scheduled run cannot load: an earlier window of its batch
                                  failed for good (`blocker`, the run id)

`TransientError` is no class: it is the name a retry policy matches an error marked
`transient` by (`error_names`).

Errors chain their causes (`raise ... from err`), except around drivers whose messages
may hold a secret: those are re-raised `from None` with a redacted one-line message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A Rust backtrace (delta-rs, object_store) appended when RUST_BACKTRACE or
# RUST_LIB_BACKTRACE is set: "Stack backtrace:" and/or numbered frames "   0: <unknown>".
_BACKTRACE = re.compile(r"(?im)^\s*(?:stack backtrace:|0: \S.*\n\s*1: )")


def _escapes(keep: str) -> dict[int, str]:
    """The `str.translate` table of `printable`: each control character a terminal acts on
    as the text that names it; `keep` the ones left as they are."""
    table = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
    table.update({0x0A: "\\n", 0x0D: "\\r"})  # as a reader of Python or C writes them
    # line and paragraph separators start a line; the bidirectional overrides and isolates
    # reorder what is shown after them ("Trojan Source"): printed, they would show a text
    # other than the one the value holds
    table.update({c: f"\\u{c:04x}" for c in [0x2028, 0x2029, *range(0x202A, 0x202F)]})
    table.update({c: f"\\u{c:04x}" for c in range(0x2066, 0x206A)})
    for c in keep:
        del table[ord(c)]
    return table


_ONE_LINE = _escapes("\t")
_LINES = _escapes("\t\n")


def printable(text: str, *, lines: bool = False) -> str:
    """`text` safe to print on a terminal: every control character (C0 but the tab, DEL,
    C1, line separators, bidi overrides) shown as its escape, `\\x1b` for ESC. A value of
    the data (a cell, a column name, a driver's or DuckDB's message quoting it) may hold
    `\\x1b]0;...\\x07` (sets the window title) or `\\x1b[2J` (clears the screen), or a
    `\\r\\n` that starts a line of its own: printed raw, the terminal would act on them
    or a reader take a forged line for onceflow's. A newline is escaped too (a problem is
    one line), unless `lines` (a traceback). The CLI's own colours are added after this,
    to text already printable. JSON output needs none of it: JSON escapes them."""
    return text.translate(_LINES if lines else _ONE_LINE)


def plain_message(text: str) -> str:
    """A library's error text without terminal colours or a Rust backtrace: what it says,
    not where it was (the backtrace is for the library's developers, and long)."""
    text = _ANSI.sub("", text)
    match = _BACKTRACE.search(text)
    return (text[: match.start()] if match else text).rstrip()


# delta-kernel names a log file by its Rust Debug form, ~500 characters of which the
# file's name and version are what a reader needs: `ParsedLogPath { location: FileMeta {
# location: Url { scheme: "file", ... }, ... }, filename: "00000000000000000001.json",
# extension: "json", version: 1, file_type: Commit }`
_LOG_PATH = re.compile(
    r'ParsedLogPath \{.*?filename: "(?P<name>[^"]*)"[^{}]*?version: (?P<version>\d+)[^{}]*\}'
)


def _log_problem(reason: str) -> tuple[str, bool]:
    """delta-kernel's reason in words, and whether it names the missing log files: a gap
    in the commit files says which versions are missing; any other log file it names is
    shown by its file name."""
    named = [(m["name"], int(m["version"])) for m in _LOG_PATH.finditer(reason)]
    if "found gap" in reason and len(named) == 2 and named[1][1] > named[0][1] + 1:
        first, last = named[0][1], named[1][1]
        missing = [f"{v:020d}.json" for v in range(first + 1, last)]
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        files = ", ".join(missing[:3]) + more
        return (
            f"its _delta_log is missing {files}: the log goes from version {first} to {last}",
            True,
        )
    return _LOG_PATH.sub(lambda m: m["name"], reason), False


def unopenable_table(uri: str, reason: str) -> str:
    """Why a Delta table cannot be opened, and the two ways back: a table is only its
    log, so a damaged log file is restored; or the table is rebuilt from the lake it was
    loaded from (its tracker rows go back to pending, the next load re-applies every file)."""
    said, missing = _log_problem(reason)
    said = said[:300]
    fix = (
        "restore that file from a backup, or delete the table's folder and run "
        "`onceflow load`, which rebuilds the table from the lake's files"
    )
    if missing:
        return f"{uri}: cannot open the Delta table: {said}. Either {fix}"
    return (
        f"{uri}: cannot open the Delta table ({said}). If a file of its _delta_log is "
        f"damaged, {fix}"
    )


def is_panic(error: BaseException) -> bool:
    """Whether `error` is a Rust panic surfaced through PyO3 (ConnectorX, delta-rs):
    `pyo3_runtime.PanicException` derives from BaseException, not Exception, so that
    `except Exception` lets it through, and it would end the whole process."""
    kind = type(error)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


class OnceflowError(Exception):
    """Base of every error onceflow raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context


class ConfigError(OnceflowError):
    """The config file or a command-line option is invalid."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field


class StateError(OnceflowError):
    """The state store is unreachable, corrupt, or refused a transition."""

    @property
    def permanent(self) -> bool:
        """Waiting will not help (a store newer than this onceflow, a database or role
        that does not exist, a wrong password): a long-running worker or scheduler stops
        at start instead of retrying it for ever."""
        return bool(self.context.get("permanent"))


class TransitionError(StateError):
    """A scheduled run cannot make this transition: illegal, or its state moved on."""

    def __init__(self, message: str, *, run_id: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.run_id = run_id


class LeaseLostError(StateError):
    """A worker's job lease expired or was revoked: its token is fenced, nothing it
    records for that job counts any more."""

    def __init__(self, message: str, *, job_id: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.job_id = job_id


class LockError(OnceflowError):
    """A lock is held by someone else, or was lost."""

    def __init__(self, message: str, *, lock: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.lock = lock


class SourceError(OnceflowError):
    """A source database failed; `transient` says whether retrying may help, `kinds`
    which built-in errors it amounts to (`ConnectionError` for a refused or lost
    connection, `TimeoutError`), for a retry policy's `retry_on`."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        kinds: tuple[str, ...] = (),
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.transient = transient
        self.kinds = kinds


class ExtractError(OnceflowError):
    """Writing or verifying an extracted file failed."""


class LoadError(OnceflowError):
    """Loading a file into a Delta table failed; the table is left untouched."""


class GateError(LoadError):
    """A failing error-severity pre-load rule refused a file: nothing of it is committed.

    `attempt`: whether the refusal counts against the file's retries (False when the
    same file was refused by the same rules before, or when only rules that could not
    run refused it); `rule_errors_only`: every refusing rule could not run (the repair
    is the rule, not the data)."""

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        rules: tuple[str, ...] = (),
        attempt: bool = True,
        rule_errors_only: bool = False,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.table = table
        self.rules = rules
        self.attempt = attempt
        self.rule_errors_only = rule_errors_only


class ValidateError(OnceflowError):
    """The data a validation should read cannot be found or read."""

    def __init__(self, message: str, *, table: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.table = table


class ReportError(OnceflowError):
    """A report file could not be written; `report` holds the complete validation."""

    exit_code = 2

    def __init__(self, message: str, *, report: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.report = report


class StuckRunError(OnceflowError):
    """A scheduled run ran longer than its `max_runtime`: failed, its job's lease revoked."""


class WorkerLostError(OnceflowError):
    """A scheduled run's worker was lost - killed (often out of memory), crashed, or cut
    off - so that its job's lease expired: each loss is a failed attempt, and the run is
    failed with this error once its retry budget is spent."""


class BlockedRunError(OnceflowError):
    """A scheduled run cannot load: an earlier window of its batch (a backfill, a catch-up)
    that shares a table failed for good, and a table loads its windows in order."""

    def __init__(self, message: str, *, blocker: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.blocker = blocker


TRANSIENT = "TransientError"


def error_names(error: BaseException) -> tuple[str, ...]:
    """The names an error answers to in a retry policy's `retry_on`: `TransientError`
    when it is marked `transient` (a SourceError a retry may heal), then its class and
    every base class, most specific first (`SourceError`, `OnceflowError`, `Exception`)."""
    names = [c.__name__ for c in type(error).__mro__ if c not in (object, BaseException)]
    if getattr(error, "transient", False):
        names.insert(0, TRANSIENT)
    # a driver's error re-raised as SourceError (its message may hold a secret) keeps
    # what it amounts to: `retry_on: [ConnectionError]` matches a refused connection
    for kind in getattr(error, "kinds", ()):
        found = _known_classes().get(kind)
        for cls in found.__mro__ if found is not None else ():
            if cls not in (object, BaseException) and cls.__name__ not in names:
                names.append(cls.__name__)
    return tuple(names)


def _known_classes() -> dict[str, type[BaseException]]:
    import builtins

    found: dict[str, type[BaseException]] = {
        name: value
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    found.update(
        (name, value)
        for name, value in globals().items()
        if isinstance(value, type) and issubclass(value, OnceflowError)
    )
    return found


def known_error_names() -> frozenset[str]:
    """The error type names a retry policy knows: onceflow's errors, Python's built-in
    exceptions, and `TransientError`."""
    return frozenset(_known_classes()) | {TRANSIENT}


def names_of(name: str) -> tuple[str, ...]:
    """The names an error recorded only by its type name answers to: a known class's
    own and its bases' (`TimeoutError` -> `TimeoutError`, `OSError`, `Exception`);
    an unknown name, itself alone."""
    cls = _known_classes().get(name)
    if cls is None:
        return (name,)
    return tuple(c.__name__ for c in cls.__mro__ if c not in (object, BaseException))


def check_error_name(name: object) -> str:
    """`name` when a retry policy can match it: a known error type (`known_error_names`),
    or a dotted name standing for a type of another library (`psycopg.OperationalError`,
    matched by its class name, as a run failed through the API may record one). Else
    ValueError naming the nearest known names: a misspelt name would match nothing, and
    the retries it was meant for would silently never happen."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an error type name is non-empty text, got {name!r}")
    if "." in name.strip(".") or name in known_error_names():
        return name
    hint = did_you_mean(name, known_error_names(), cutoff=0.75)
    raise ValueError(
        f"unknown error type {name!r}{hint}: use one of onceflow's errors (OnceflowError, "
        "SourceError, ExtractError, LoadError, LockError, StuckRunError ...), "
        "TransientError, a Python built-in exception (TimeoutError, OSError ...), or "
        "another library's type with its module (psycopg.OperationalError)"
    )


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """` (did you mean a or b?)` naming the known names closest to a misspelt one, or ''."""
    import difflib

    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=cutoff)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def first_problem(problems: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The problem of a pydantic error to report first: an unknown key before any other.
    A misspelt key (`ur:`) also makes the key it stands for missing, and "url: required
    field is missing" would hide the typo that is the real problem."""
    for problem in problems:
        if problem.get("type") == "extra_forbidden":
            return problem
    return problems[0]


#: What a pydantic error type expects, with an example, instead of its own text
#: ("Input should be a valid datetime or date, input is too short").
_EXPECTED = {
    "datetime": "a date and time with its offset, e.g. 2025-01-01T00:00:00+00:00",
    "date": "a date, e.g. 2025-01-01",
    "int": "a whole number, e.g. 3",
    "float": "a number, e.g. 1.5",
    "bool": "true or false",
    "string": "text",
    "dict": "a mapping of settings, e.g. {key: value}",
    "model": "a mapping of settings, e.g. {key: value}",
}

#: The error types (`<base><suffix>`) that say a value is not of its field's type at all.
_TYPE_SUFFIXES = ("_type", "_parsing", "_from_date_parsing", "_from_float", "_parsing_size")


def field_problem(problem: Mapping[str, Any], *, show_input: bool = True) -> str:
    """A pydantic error of one field in words: what is expected, with an example, and
    what was given (unless `show_input` is False: a value that may hold a secret).
    Messages of onceflow's own validators are kept as they are."""
    kind = str(problem.get("type", ""))
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    value = problem.get("input")
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    got = f", got {shown}" if show_input else ""
    if kind == "missing":
        return "required field is missing"
    if kind == "list_type":
        hint = f": write [{value}]" if show_input and isinstance(value, str) else ""
        return f"expected a list, e.g. [a, b]{got}{hint}"
    if kind == "literal_error":
        expected = message.replace("Input should be", "expected")
        return f"invalid value {shown}: {expected}" if show_input else f"invalid value: {expected}"
    base = kind.split("_", 1)[0]
    if base in _EXPECTED and kind.removeprefix(base) in _TYPE_SUFFIXES:
        return f"expected {_EXPECTED[base]}{got}"
    if message.startswith("Input should be "):
        return f"must be {message.removeprefix('Input should be ')}{got}"
    return message


def named_once(name: str | None, message: str) -> str:
    """`name: message`, the name once: a stored error often starts with its table's,
    file's or type's name already (`shop.orders: ...`)."""
    if not name or message.startswith(f"{name}:"):
        return message
    return f"{name}: {message}"


def typed_error(kind: str | None, message: str | None) -> str:
    """A run's error as one text: `Type: message`, the type once (an error recorded from
    a message, `mark_as_failed(run_id, "TimeoutError: ...")`, starts with it already),
    or the message alone without a type (a cancel's note); empty without a message."""
    return named_once(kind, message) if message else ""
