"""Deprecated location of the key ring: use ``from consentgate import load_keyring, KeyRing``.

Before 0.2 the modules were flat, and docs/store.md showed
``from consentgate.keys import load_keyring``; that import keeps working, with a
:class:`DeprecationWarning`, until 0.3. Nothing in consentgate imports this module.
"""

import warnings

from consentgate.core.signed.keyring import KeyRing
from consentgate.signing.key_directory import load_keyring

__all__ = ["KeyRing", "load_keyring"]

warnings.warn(
    "consentgate.keys moved: import load_keyring and KeyRing from consentgate "
    "(consentgate.keys goes away in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
