"""Driver errors in, photostore errors out: nothing above the metadata adapter sees a driver type.

==================================================  ==========================================
raised by SQLAlchemy / the driver                   raised to callers
==================================================  ==========================================
IntegrityError (unique or foreign key broken)       :class:`~photostore.errors.Conflict`
DataError (a value the column cannot hold)          :class:`~photostore.errors.BadRequest`
any other DBAPIError (OperationalError: locked,     :class:`~photostore.errors.BackendUnavailable`
disconnected, ...), pool timeout, OSError           (the operation may be retried)
a value SQLAlchemy cannot bind (naive datetime,     ValueError / TypeError: a caller's bug, not
payload that is not JSON)                           the backend's, so it stays a plain error
==================================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc

from photostore.errors import BackendUnavailable, BadRequest, Conflict


def _describe(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {cause}".splitlines()[0][:300]


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run the block, re-raising driver errors as photostore errors that name ``what``."""
    try:
        yield
    except exc.IntegrityError as error:
        raise Conflict(f"{what}: {_describe(error)}") from error
    except exc.DataError as error:
        raise BadRequest(f"{what}: {_describe(error)}") from error
    except (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError, OSError) as error:
        raise BackendUnavailable(f"{what}: {_describe(error)}") from error
    except exc.StatementError as error:  # raised before the driver saw the statement
        if isinstance(error.orig, ValueError):
            raise ValueError(f"{what}: {error.orig}") from error
        if isinstance(error.orig, TypeError):
            raise TypeError(f"{what}: {error.orig}") from error
        raise
