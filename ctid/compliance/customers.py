"""Customer-only use of company lines: a dialled number must be a customer's or allowed.

The customer and lead lists are E.164 numbers in a set, loaded from CSV files at start
(:meth:`CustomerLines.import_csv`, the ``number`` column read like the do-not-call import);
checking a dial touches memory only.  Allow entries cover internal and emergency numbers:
an entry that is a whole phone number matches that number however it is dialled, and any
entry matches as a digit prefix of the number as dialled or in E.164 (with or without
``+``), so ``"911"`` and ``"+1800"`` both work.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ctid.compliance.numbers import is_phone_number, normalise
from ctid.compliance.optout import read_csv

NOT_A_CUSTOMER = "not on the customer lists nor allowed: a private call on a company line"


class CustomerLines:
    def __init__(self, default_region: str, allow: Iterable[str] = ()) -> None:
        self._region = default_region
        self._numbers: set[str] = set()
        entries = [a.strip() for a in allow if a.strip()]
        self._prefixes = tuple(entries)
        self._allowed = {
            normalise(a, default_region) for a in entries if is_phone_number(a, default_region)
        }

    def __contains__(self, number: str) -> bool:
        return normalise(number, self._region) in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def add(self, number: str) -> str:
        e164 = normalise(number, self._region)
        self._numbers.add(e164)
        return e164

    def import_csv(self, path: Path) -> int:
        """Add every number of a CSV with a ``number`` column; blocking, call at start.

        Returns how many numbers were new; a bad file raises one :class:`PolicyError`
        naming file and line.
        """
        before = len(self._numbers)
        for number in read_csv(path, self._region):
            self.add(number)
        return len(self._numbers) - before

    def allowed(self, dialled: str, e164: str) -> bool:
        if e164 in self._allowed:
            return True
        digits = "".join(ch for ch in dialled if ch.isdigit() or ch == "+")
        prefixes = self._prefixes
        return bool(prefixes) and (
            digits.startswith(prefixes)
            or e164.startswith(prefixes)
            or e164.removeprefix("+").startswith(prefixes)
        )

    def violation(self, dialled: str, e164: str) -> str | None:
        """Why a dial is no customer call, or None; ``e164`` is ``dialled`` normalised."""
        if e164 in self._numbers or self.allowed(dialled, e164):
            return None
        return NOT_A_CUSTOMER
