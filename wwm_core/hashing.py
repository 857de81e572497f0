"""Stable hashes: the only source of seeds in the project.

Python's built-in ``hash`` is salted per process, so it must never decide anything that ends up in
the output; these functions give the same number on every worker, runner and retry.
"""
import hashlib


def stable_hash(*parts) -> int:
    """A 64-bit integer determined only by the ``str`` of each part, in order."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        encoded = str(part).encode("utf-8")
        # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        digest.update(len(encoded).to_bytes(4, "little"))
        digest.update(encoded)
    return int.from_bytes(digest.digest(), "little")
