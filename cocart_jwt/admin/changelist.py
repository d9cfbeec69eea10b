"""The token list at a million sessions: each page costs what its own rows cost.

- ``EstimatedCountPaginator``: the unfiltered list on PostgreSQL counts from the planner's
  statistics (``pg_class.reltuples``) instead of a ``COUNT(*)`` over the whole table; a
  filtered or searched list, a small table and other databases count exactly.
- ``TokenChangeList``: "revoked by" for the page's rows only, one query for the page.
- ``UserFilter``: the user filter asks the token admin's user autocomplete (the permission
  rules of ``autocomplete.py``), never a DISTINCT of every session's user.
- ``search_sessions``: usernames and emails are looked up in the user table first (a few rows),
  then sessions by ``user_id``, so a search never joins every session to its user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR, ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _

from ..choices import RevokeReason
from ..managers import TokenQuerySet
from ..models import Status, Token
from .autocomplete import UserAutocomplete, user_match

# A search word matching more users than this filters sessions by a subquery (exact, but it
# reads every session): such a word names no one in particular.
MAX_LISTED_USERS = 1000


class EstimatedCountPaginator(Paginator):
    """Django's paginator, counting an unfiltered PostgreSQL table from its statistics.

    ``COUNT(*)`` reads every row (seconds at a million); ``reltuples``, which autovacuum and
    ``ANALYZE`` keep current, is read at once. Page links then lead as far as the estimate
    (a page past the real end is empty); ``estimated`` says the count is one.
    """

    estimate_above = 100_000  # below, COUNT(*) is cheap and exact

    estimated = False

    @cached_property
    def count(self) -> int:
        estimate = planner_estimate(self.object_list)
        if estimate is not None and estimate >= self.estimate_above:
            self.estimated = True
            return estimate
        return super().count


def planner_estimate(queryset: Any) -> int | None:
    """PostgreSQL's row estimate of the table of an unfiltered queryset, else None."""
    if not isinstance(queryset, QuerySet):
        return None
    query = queryset.query
    if query.where or query.is_sliced or query.distinct or query.combinator:
        return None
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    # -1: never analyzed (PostgreSQL 14+), 0 perhaps only not yet: count those exactly.
    if row is None or row[0] is None or row[0] <= 0:
        return None
    return int(row[0])


def attach_revokers(sessions: Iterable[Token]) -> None:
    """Set ``revoked_by_name`` on each session an administrator revoked: who logged the first
    change at or after its revocation (the revoke itself). One query for all of them."""
    revoked = {
        session.pk: session
        for session in sessions
        if session.revoked_at is not None and session.revoke_reason == RevokeReason.ADMIN
    }
    if not revoked:
        return
    entries = LogEntry.objects.filter(
        content_type__app_label=Token._meta.app_label,
        content_type__model=Token._meta.model_name,
        object_id__in=list(revoked),
        action_flag=CHANGE,
    ).order_by("action_time")
    username = f"user__{get_user_model().USERNAME_FIELD}"
    for object_id, at, name in entries.values_list("object_id", "action_time", username):
        session = revoked[object_id]
        revoked_at = cast(Any, session.revoked_at)
        if at >= revoked_at and getattr(session, "revoked_by_name", None) is None:
            session.revoked_by_name = name  # type: ignore[attr-defined]


class TokenChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        attach_revokers(self.result_list)  # evaluates the page: the template reuses its rows


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Token]) -> QuerySet[Token]:
        status = self.value()
        if status is None:
            return queryset
        return cast(TokenQuerySet, queryset).with_status(status)


class UserFilter(admin.ListFilter):
    """Sessions of one user, chosen in the token admin's user autocomplete.

    Its parameter is the one of Django's related filter (``user__id__exact``), so links made
    for that keep working; any user id is accepted in the URL, while the autocomplete offers
    the users its permission rules allow.
    """

    title = _("user")
    template = "admin/cocart_jwt/token/user_filter.html"

    def __init__(
        self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any
    ) -> None:
        super().__init__(request, params, model, model_admin)
        field = Token._meta.get_field("user")
        self.parameter_name = f"user__{field.target_field.name}__exact"
        value = params.pop(self.parameter_name, None)
        self.value = value[-1] if isinstance(value, list) else value
        if self.value is not None:
            self.used_parameters[self.parameter_name] = self.value
        # The autocomplete answers those who may create or mint (autocomplete.py).
        self.can_search = bool(
            model_admin.has_add_permission(request) or model_admin.has_change_permission(request)
        )
        self.kept_parameters = [
            (name, item)
            for name, items in request.GET.lists()
            if name not in {self.parameter_name, PAGE_VAR, ERROR_FLAG}
            for item in items
        ]
        self.field = self.form(model_admin.admin_site)[self.parameter_name]

    def form(self, admin_site: Any) -> forms.Form:
        widget = UserAutocomplete(
            Token._meta.get_field("user"),
            admin_site,
            attrs={"style": "width: 100%", "data-placeholder": _("Any user")},
        )
        field = forms.ModelChoiceField(
            get_user_model()._default_manager.all(), required=False, widget=widget
        )
        form = forms.Form(data={self.parameter_name: self.value}, auto_id="cocart-jwt-%s")
        form.fields[self.parameter_name] = field
        return form

    @cached_property
    def selected_label(self) -> str:
        user = get_user_model()._default_manager.filter(pk=self.value).first()
        return str(user if user is not None else self.value)

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter_name]

    def choices(self, changelist: Any) -> Iterator[Mapping[str, object]]:
        yield {
            "selected": self.value is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("All"),
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Token]) -> QuerySet[Token]:
        if self.value is None:
            return queryset
        try:
            return queryset.filter(**{self.parameter_name: self.value})
        except (ValueError, ValidationError) as error:
            raise IncorrectLookupParameters(error) from error


def search_words(rows: QuerySet[Any], term: str, match: Callable[[str], Q]) -> QuerySet[Any]:
    """The rows matching every word of ``term`` by ``match`` (quotes keep words together, as
    Django's admin search)."""
    for bit in smart_split(term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit:
            rows = rows.filter(match(bit))
    return rows


def of_users_matching(word: str) -> Q:
    """Rows whose ``user`` has ``word`` in their username or email: the users first, by id."""
    users = get_user_model()._default_manager.filter(user_match(word))
    ids = list(users.values_list("pk", flat=True)[: MAX_LISTED_USERS + 1])
    return Q(user__in=ids) if len(ids) <= MAX_LISTED_USERS else Q(user__in=users.values("pk"))


def search_sessions(sessions: QuerySet[Token], term: str) -> QuerySet[Token]:
    """Sessions matching every word of ``term``: in their user's username or email, in their
    description, or their exact id."""
    return search_words(sessions, term, session_match)


def session_match(word: str) -> Q:
    return of_users_matching(word) | Q(description__icontains=word) | Q(pk=word)
