"""A JSON parser that answers hostile bodies with a 400, never a 500.

DRF's ``JSONParser`` turns a ``ValueError`` into a ``ParseError`` but lets ``RecursionError``
through: a body of ``"[" * 100000`` (200 KB, under any upload limit) or a field nested as
deep makes the JSON decoder give up, and the request ends in a 500. The endpoints of this app
use the parser below; a site gets the same protection for its own views with
``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import IO, Any

from django.utils.translation import gettext_lazy as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

logger = logging.getLogger("cocart_jwt")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a document nested too deeply refused as malformed (400)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # DRF already answers ValueError (syntax, bad UTF-8, NaN, a 5000-digit number) and an
        # unknown or non-text charset with a ParseError; depth is what it misses.
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            logger.info("Request body refused: JSON nested too deeply")
            raise ParseError(_("JSON parse error - the document is nested too deeply.")) from None
