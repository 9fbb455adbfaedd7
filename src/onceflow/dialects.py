"""Which database URL schemes (`<dialect>[+driver]://`) can be read, known without
importing SQLAlchemy (0.18 s) or any driver.

A misspelt scheme (`postgressql://`, `postgresql+psycopg3://`) used to pass `check` and
fail each table of the first run: SQLAlchemy's `NoSuchModuleError`, or libpq's
`missing "=" after ...` when the ADBC reader got the suffixed URL. `scheme_problem`
refuses it with the fix. Two strengths:

- when a config is read (`strict=False`), only a scheme close to a known one (a typo)
  is refused: any other may be a dialect of a package that this host, which only loads
  or reports, does not have installed, as it need not;
- where a source is connected or checked (`strict=True`: `check`, extraction), every
  scheme that neither SQLAlchemy nor an installed package provides is refused.

SQLAlchemy's own dialects and drivers are listed here (a unit test compares them with
the installed SQLAlchemy); another package's are its `sqlalchemy.dialects` entry points
(`snowflake`, `databricks`...), looked up only for a scheme not listed.
"""

from __future__ import annotations

import functools

from onceflow.errors import did_you_mean

#: SQLAlchemy's dialects and their drivers (SQLAlchemy 2.x); `postgres` is onceflow's
#: spelling of `postgresql` (its readers take it), `mariadb` SQLAlchemy's of MySQL's.
_MYSQL_DRIVERS = (
    "mysqldb",
    "pymysql",
    "mysqlconnector",
    "asyncmy",
    "aiomysql",
    "cymysql",
    "pyodbc",
    "mariadbconnector",
)
_POSTGRES_DRIVERS = ("psycopg2", "psycopg", "psycopg_async", "psycopg2cffi", "asyncpg", "pg8000")
SQLALCHEMY_DIALECTS: dict[str, tuple[str, ...]] = {
    "postgresql": _POSTGRES_DRIVERS,
    "postgres": _POSTGRES_DRIVERS,
    "mysql": _MYSQL_DRIVERS,
    "mariadb": _MYSQL_DRIVERS,
    "sqlite": ("pysqlite", "aiosqlite", "pysqlcipher"),
    "oracle": ("cx_oracle", "oracledb", "oracledb_async"),
    "mssql": ("pyodbc", "pymssql", "aioodbc", "mssqlpython"),
}
#: The dialects `reader: auto` reads without SQLAlchemy (ADBC, ConnectorX).
_OWN_READERS = ("postgresql", "postgres", "mysql", "mariadb", "sqlite")
#: How close a name must be to a known one to be taken for a typo of it.
_TYPO_CUTOFF = 0.8


@functools.cache
def installed_dialects() -> frozenset[str]:
    """The names other packages register SQLAlchemy dialects under (`snowflake`,
    `redshift.redshift_connector`): entry points, read without importing them (~10 ms)."""
    from importlib.metadata import entry_points

    return frozenset(e.name.lower() for e in entry_points(group="sqlalchemy.dialects"))


def _installed(base: str, driver: str) -> bool:
    names = installed_dialects()
    if driver:
        return f"{base}.{driver}" in names
    return base in names or any(n.startswith(base + ".") for n in names)


def scheme_problem(scheme: str, *, strict: bool) -> str | None:
    """Why a URL's scheme (`postgresql+psycopg`) cannot be read, with the fix; None when
    it can, or (not `strict`) when it may be a dialect of a package not installed here."""
    scheme = scheme.lower()
    base, plus, driver = scheme.partition("+")
    known = SQLALCHEMY_DIALECTS.get(base)
    if known is None:
        if _installed(base, ""):
            return None
        spelt = [d for d in SQLALCHEMY_DIALECTS if d != "postgres"]  # one spelling each
        hint = did_you_mean(base, spelt, cutoff=_TYPO_CUTOFF)
        if not hint and not strict:
            return None
        return (
            f"{scheme}:// names the database dialect {base!r}, which neither SQLAlchemy "
            f"nor an installed package provides{hint}: write postgresql://, mysql://, "
            "sqlite:///, oracle+oracledb:// or mssql+pyodbc://, or install the package "
            f"of the {base} dialect"
        )
    if not plus or driver in known or _installed(base, driver):
        return None
    hint = did_you_mean(driver, known, cutoff=_TYPO_CUTOFF)
    if not hint and not strict:
        return None
    example = "postgresql" if base == "postgres" else base
    own = f", or {example}:// (read by onceflow's own reader)" if base in _OWN_READERS else ""
    return (
        f"{scheme}:// names the driver {driver!r}, which is no driver of {example}{hint} "
        f"(its drivers: {', '.join(known)}): write {example}+<driver>://{own}"
    )


def without_driver(url: str) -> str:
    """`url` with its scheme's `+driver` removed (`postgresql+psycopg://` ->
    `postgresql://`), for a reader that connects by its own driver (ADBC's libpq)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme.partition('+')[0]}://{rest}"
