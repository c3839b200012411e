"""``geofence.Account``: who sends a request, as the app knows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Account:
    """The caller of a request, passed by the app (``decide(..., account=...)`` or an
    adapter's account hook).

    ``id`` is the app's own stable id (an API key id, an organisation, a user); it is what
    the store keys on and what events and logs carry. ``home_country`` is the ISO 3166-1
    alpha-2 country the account is registered in (billing, profile), or None; it is
    upper-cased, and a value that is no country simply matches no ``home_regions``.
    ``created_at`` is an aware datetime or None. ``groups`` are names ``[exempt] accounts``
    can exempt as ``"@group"``.
    """

    id: str
    home_country: str | None = None
    created_at: datetime | None = None
    groups: tuple[str, ...] | frozenset[str] = ()

    def __post_init__(self) -> None:
        # An app's hook builds these on every request: a programming error (an int id, a
        # list of groups given as one string) is caught here, where it is made.
        if not isinstance(self.id, str) or not self.id:
            raise TypeError(f"Account.id must be a non-empty string, not {self.id!r}")
        if self.home_country is not None:
            if not isinstance(self.home_country, str):
                raise TypeError(
                    f"Account.home_country must be a string or None, not {self.home_country!r}"
                )
            object.__setattr__(self, "home_country", self.home_country.strip().upper() or None)
        if isinstance(self.groups, str):  # type: ignore[unreachable]  # apps are untyped
            raise TypeError("Account.groups must be a collection of names, not one string")
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))
