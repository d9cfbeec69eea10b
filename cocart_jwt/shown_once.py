"""Secrets that a page shows once: they render as themselves, their ``repr()`` hides them."""

from __future__ import annotations


class ShownOnce(str):
    """An access token, refresh token or login link in a template context.

    Django's template engine logs every failed variable lookup at DEBUG on the
    ``django.template`` logger, with ``repr()`` of the whole context in the message: turning
    that logger up to debug a template would write each secret of the page to the log. As a
    ``str`` it renders, escapes and compares as the secret; only its ``repr()`` differs.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<hidden: shown once>'"
