"""The caller's security events (``events/``): their own, newest first, a cursor page at a time.

Events of every session of the caller's user, including sessions since revoked or deleted by
``jwt cleanup``: never another user's. A page costs one indexed query (the user's events by
``at``, read backwards), never a COUNT.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from .http import no_store
from .models import TokenEvent
from .permissions import NotPersonal
from .schema import CSRF_OR_PERSONAL, INVALID_CURSOR, error_headers, error_responses, extend_schema
from .serializers import EventSerializer
from .views import BearerView

BAD_PAGE_SIZE = _("A whole number from 1.")
PAGE_SIZE_HELP = _("Events per page: 50 unless given, at most 200 (a larger number is capped).")


class EventPagination(CursorPagination):
    """``{"next", "previous", "results"}``; ties of ``at`` ordered by id, newest first.

    A ``page_size`` above the maximum is capped; one that is not a whole number from 1 is a
    400 (DRF's own pagination would quietly use the default instead).
    """

    ordering = ("-at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    page_size_help = PAGE_SIZE_HELP

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError({self.page_size_query_param: [BAD_PAGE_SIZE]})
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = str(self.page_size_help)
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class EventListView(BearerView, ListAPIView):
    """The security events of the Bearer token's user. Not for a personal token (403): the
    account's security log is not what a key for an integration needs to see."""

    permission_classes = [IsAuthenticated, NotPersonal]

    serializer_class = EventSerializer
    pagination_class = EventPagination

    def get_queryset(self) -> QuerySet[TokenEvent]:
        # IsAuthenticated: the user is never anonymous here.
        return TokenEvent.objects.filter(user=cast(Any, self.request.user))

    @extend_schema(
        summary="List my security events",
        responses={
            200: EventSerializer(many=True),
            **error_responses(
                400, 401, 403, 404, descriptions={403: CSRF_OR_PERSONAL, 404: INVALID_CURSOR}
            ),
        },
        parameters=error_headers(401),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return no_store(super().get(request, *args, **kwargs))
