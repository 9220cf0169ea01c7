"""CrossGuard rules for the Image Library HA of Platform9 PCD (self-contained: pulumi-policy only)."""

from .rules import POLICIES

__all__ = ["POLICIES"]
