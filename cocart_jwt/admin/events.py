"""Security events in the admin: a read-only list, and a session's events on its token page.

Nothing here adds, changes or deletes an event (``EVENT_RETENTION`` and ``jwt cleanup`` prune
them): staff need ``view_tokenevent``. At millions of events the list costs what its page
costs, as the token list does (``changelist.py``): no ``COUNT(*)`` of the unfiltered table on
PostgreSQL, no facet counts, a search that looks users up first and matches a sid exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Token, TokenEvent
from .changelist import EstimatedCountPaginator, of_users_matching, search_words

# The token page shows this many of its session's events, newest first.
SESSION_EVENTS_SHOWN = 20


@admin.register(TokenEvent)
class TokenEventAdmin(admin.ModelAdmin):
    list_display = ["at", "event", "user", "session", "reason", "ip", "user_agent"]
    list_filter = ["event", "at"]
    list_select_related = ["user"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["=sid"]  # get_search_results: users first, then a whole session id
    search_help_text = _("Username or email (any part), or a whole session id.")

    @admin.display(description=_("session"), ordering="sid")
    def session(self, obj: TokenEvent) -> str:
        return session_link(obj.sid)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TokenEvent], search_term: str
    ) -> tuple[QuerySet[TokenEvent], bool]:
        return search_events(queryset, search_term), False


def search_events(events: QuerySet[TokenEvent], term: str) -> QuerySet[TokenEvent]:
    """Events matching every word of ``term``: in their user's username or email, or their
    whole session id (quotes keep words together, as Django's admin search)."""
    if "\x00" in term:  # PostgreSQL refuses NUL in text: it matches nothing (not a 500)
        return events.none()
    return search_words(events, term, event_match)


def event_match(word: str) -> Q:
    return of_users_matching(word) | Q(sid=word)


def session_link(sid: str) -> str:
    """The session id, shortened, linking to its token page (which may be gone: cleanup)."""
    short = format_html('<code title="{}">{}…</code>', sid, sid[:8])
    try:
        url = reverse("admin:cocart_jwt_token_change", args=[quote(sid)])
    except NoReverseMatch:  # the token admin is not on the default admin site
        return short
    return format_html('<a href="{}">{}</a>', url, short)


def session_events(session: Token) -> str:
    """The newest events of ``session`` as a table (one query), with a link to all of them."""
    rows = list(TokenEvent.objects.filter(sid=session.pk)[:SESSION_EVENTS_SHOWN])
    if not rows:
        return "-"
    cells = (
        (
            when(row),
            row.get_event_display(),
            row.get_reason_display() or "-",
            row.ip or "-",
            row.user_agent or "-",
        )
        for row in rows
    )
    body = format_html_join("", "<tr>{}</tr>", ((cells_html(row),) for row in cells))
    head = cells_html(EVENT_COLUMNS, "th")
    table = format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)
    try:
        url = reverse("admin:cocart_jwt_tokenevent_changelist")
    except NoReverseMatch:  # the event admin is not on the default admin site
        return table
    query = urlencode({"q": session.pk})
    more = gettext("All events of this session")
    return format_html('{}<p><a href="{}?{}">{}</a></p>', table, url, query, more)


EVENT_COLUMNS = (_("at"), _("event"), _("reason"), _("IP address"), _("user agent"))


def cells_html(values: Iterable[Any], tag: str = "td") -> str:
    return format_html_join("", f"<{tag}>{{}}</{tag}>", ((value,) for value in values))


def when(event: TokenEvent) -> str:
    return date_format(timezone.localtime(event.at), "DATETIME_FORMAT")
