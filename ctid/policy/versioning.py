"""Which policy is in force: the file's text and its digest, next to the ``version`` label.

The label is what people write (and what reports and events carry); the digest names the exact
text, so two edits under one label are still told apart in the store's ``policy_versions``.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ctid.errors import PolicyError
from ctid.policy.loader import load_policy
from ctid.policy.schema import Policy


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    version: str
    """The policy's own ``version`` label."""
    digest: str
    """sha256 of the file's text, hex."""
    text: str


def document_of(policy: Policy, text: str) -> PolicyDocument:
    return PolicyDocument(policy.version, hashlib.sha256(text.encode()).hexdigest(), text)


def read_policy(path: Path) -> tuple[Policy, PolicyDocument]:
    """Load and check the policy (``load_policy``'s messages), with the text it came from.

    ``load_policy`` reads the file on its own; the text read here must describe the same
    policy, otherwise the file changed in between (an editor saving): refused, and the next
    change (or reload request) tries again.
    """
    policy = load_policy(path)
    try:
        text = path.read_text(encoding="utf-8")
        same = Policy.model_validate(tomllib.loads(text)) == policy
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError):
        same = False
    if not same:
        raise PolicyError(f"{path}: changed while being read; it is read again on its next change")
    return policy, document_of(policy, text)
