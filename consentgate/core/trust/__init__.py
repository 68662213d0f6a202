"""Rules for what the gate cannot trust as given: forwarded headers and client addresses,
URLs and hosts from untrusted input, the invisible characters that reorder a client's
words, and the secrets that must not reach a log.
"""
