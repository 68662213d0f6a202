"""The names operators know people by ([identity]): a person's display claim, kept
beside the digest their approvals are recorded under.

An approval made after a sign-in at the gate has the person's subject (a digest of
the issuer and the subject claim, :mod:`consentgate.core.identity.person`); an
operator answering "what did alice approve" knows ``alice@example.com``. Each sign-in
keeps the latest display value of its subject in the store's settings (``display:``
and the subject), so ``consents list --user``, the admin API's ``user`` and
``audit list --user`` find every subject shown by that name, in whichever gate they
signed in. It decides nothing at the gate: the decision reads the subject only. A
display value is not unique by nature (an email can move to another account), so a
name may lead to several subjects, and every listing says which.
"""

from __future__ import annotations

from typing import Final

from consentgate.core.identity.person import PERSON_PREFIX
from consentgate.store.parts.context import StoreContext

_PREFIX: Final = "display:"


class PersonNames:
    """Which subject is shown by which name."""

    __slots__ = ("_ctx", "_known")

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        #: What this process wrote already (a sign-in of a known person writes nothing).
        self._known: dict[str, str] = {}

    async def remember(self, subject: str, display: str) -> None:
        """Keep ``display`` as the name of ``subject`` (the latest sign-in's)."""
        if self._known.get(subject) == display:
            return
        await self._ctx.backend.set_setting(_PREFIX + subject, display)
        self._known[subject] = display

    async def subjects_named(self, user: str) -> list[str]:
        """The subjects shown as ``user``, oldest name first; a person's own subject
        (``person:...``) names itself."""
        names = await self._ctx.backend.settings(_PREFIX)
        found = sorted(name[len(_PREFIX) :] for name, value in names.items() if value == user)
        if user.startswith(PERSON_PREFIX) and user not in found:
            found.append(user)
        return found

    async def names(self) -> dict[str, str]:
        """Every subject's name, subject -> display."""
        names = await self._ctx.backend.settings(_PREFIX)
        return {name[len(_PREFIX) :]: value for name, value in names.items()}
