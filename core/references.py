"""Short, unguessable, human-friendly references (letters quote them; people read them out on the phone)."""

import secrets

# Crockford-style alphabet: no I, L, O, U, so references survive being read aloud or retyped.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference(prefix: str, length: int = 8) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_token(nbytes: int = 24) -> str:
    """A URL-safe secret for links that must not be guessable (mandate checks, reply addresses)."""
    return secrets.token_urlsafe(nbytes)
