"""The keys directory (``[keys] directory``): the Ed25519 key files, the active key, the
cookie secret and the admin token, read and written with the permissions, locks and
atomic renames they need.

The key ring itself (signing, verifying, key ids) is pure and lives in
:mod:`consentgate.core.signed.keyring`; this package is its I/O.
"""
