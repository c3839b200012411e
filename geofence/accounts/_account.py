"""``geofence.Account``: who sends a request, as the app knows it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple


class _Fields(NamedTuple):
    id: str
    home_country: str | None
    created_at: datetime | None
    groups: tuple[str, ...]


class Account(_Fields):
    """The caller of a request, passed by the app (``decide(..., account=...)`` or an
    adapter's account hook).

    ``id`` is the app's own stable id (an API key id, an organisation, a user); it is what
    the store keys on and what events and logs carry. ``home_country`` is the ISO 3166-1
    alpha-2 country the account is registered in (billing, profile), or None; it is
    upper-cased, and a value that is no country simply matches no ``home_regions``.
    ``created_at`` is an aware datetime or None. ``groups`` are names ``[exempt] accounts``
    can exempt as ``"@group"``.

    Immutable. A named tuple, like :class:`geofence.Decision`: an app's hook builds one per
    request, and this is several times cheaper to build than a frozen dataclass.
    """

    __slots__ = ()

    def __new__(
        cls,
        id: str,
        home_country: str | None = None,
        created_at: datetime | None = None,
        groups: Iterable[str] = (),
    ) -> Account:
        # A programming error in the app's hook (an int id, one string as the groups) is
        # caught here, where it is made, not as a wrong decision later.
        if not id or (id.__class__ is not str and not isinstance(id, str)):
            raise TypeError(f"Account.id must be a non-empty string, not {id!r}")
        if home_country is not None and not (
            home_country.__class__ is str and len(home_country) == 2 and home_country.isupper()
        ):
            home_country = _country(home_country)
        if groups.__class__ is not tuple:
            if isinstance(groups, str):
                raise TypeError("Account.groups must be a collection of names, not one string")
            groups = tuple(groups)
        account: Account = tuple.__new__(cls, (id, home_country, created_at, groups))
        return account


def _country(value: object) -> str | None:
    if not isinstance(value, str):
        raise TypeError(f"Account.home_country must be a string or None, not {value!r}")
    return value.strip().upper() or None
