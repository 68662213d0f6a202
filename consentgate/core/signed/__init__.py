"""What the gate signs or MACs and checks again: consent and client records and their
canonical encoding, the Ed25519 key ring, the sealed consent page, the cookies.
"""
