"""The token registry in the admin: ``TokenAdmin``, its list, view page and actions.

Permissions map onto the model's: *view* lists and shows sessions (of every kind: login
sessions, personal access tokens, administrators' tokens), *add* creates one,
*change* mints a fresh access token and login link of a session (and edits its
description), *delete* revokes (rows are never deleted here: revoked sessions stay listed).
Issuing for another user is impersonation: the create form, the mint view and the user
autocomplete ask ``cocart_jwt.impersonation`` who may issue for whom.

The screens that issue or revoke are plain views (``views.py``) wired by ``get_urls``; the
create form is in ``forms.py``, the user autocomplete in ``autocomplete.py``; what keeps the
list fast at a million sessions (count, "revoked by", filters, search) in ``changelist.py``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from ..http import no_store
from ..impersonation import MINT, may_issue_for
from ..models import Kind, RevokeReason, Status, Token
from ..utils import now
from .autocomplete import URL_NAME as USER_AUTOCOMPLETE
from .autocomplete import UserAutocomplete, UserAutocompleteView
from .changelist import (
    EstimatedCountPaginator,
    StatusFilter,
    TokenChangeList,
    UserFilter,
    attach_revokers,
    search_sessions,
)
from .events import session_events  # and registers TokenEventAdmin
from .forms import TokenCreateForm
from .views import (
    create_view,
    mint_view,
    render_revoke,
    revoke_logged,
    revoke_user_view,
    revoke_view,
    revoked_count_message,
)

STATUS_ICONS = {
    Status.VALID: "admin/img/icon-yes.svg",
    Status.EXPIRED: "admin/img/icon-clock.svg",
    Status.REVOKED: "admin/img/icon-no.svg",
}
ADD_FIELDS = ["user", "lifetime", "refreshable", "scopes", "claims", "description"]


def username_field() -> str:
    return get_user_model().USERNAME_FIELD


def relative_time(value: datetime | None) -> str:
    """``3 hours ago`` / ``in 2 days``, the exact time in a tooltip; ``-`` for none."""
    if value is None:
        return "-"
    at = now()
    if abs((value - at).total_seconds()) < 60:
        text = gettext("just now") if value <= at else gettext("in a minute")
    elif value <= at:
        text = gettext("%(delta)s ago") % {"delta": timesince(value, at, depth=1)}
    else:
        text = gettext("in %(delta)s") % {"delta": timeuntil(value, at, depth=1)}
    exact = date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return format_html(
        '<time datetime="{}" title="{}" style="white-space: nowrap">{}</time>',
        value.isoformat(),
        exact,
        text,
    )


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["short_id", "user", "status", "kind", "scope_list", "description"]
    list_display += ["created", "expires", "last_used", "ip"]
    list_display_links = ["short_id"]
    list_filter = [StatusFilter, "kind", UserFilter, "created_at", "expires_at", "refreshable"]
    list_select_related = ["user"]
    # At a million sessions (changelist.py): no COUNT(*) of the whole table, no facet counts.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_help_text = _(
        "Username or email (any part), description (any part), or a whole session id."
    )
    actions = ["revoke_selected", "revoke_all_of_users"]
    add_form = TokenCreateForm
    # The view page, in its fieldsets: session, times, client, claims.
    session_fields = ["id", "user", "status_badge", "kind", "scope_list", "description"]
    session_fields += ["refreshable"]
    time_fields = ["created_at", "expires_at", "last_used_at", "revoked_at", "revoked_how"]
    view_fields = [*session_fields, *time_fields, "ip", "user_agent"]
    view_fields += ["token_claims", "security_events"]

    # -- columns -------------------------------------------------------------------------

    @admin.display(description=_("session"), ordering="pk")
    def short_id(self, obj: Token) -> str:
        return format_html('<code title="{}">{}…</code>', obj.pk, obj.pk[:8])

    @admin.display(description=_("status"))
    def status_badge(self, obj: Token) -> str:
        status = Status(obj.status)
        return format_html(
            '<span class="cocart-jwt-status cocart-jwt-{}" style="white-space: nowrap">'
            '<img src="{}" alt="" width="13" height="13" style="vertical-align: -2px"> {}</span>',
            status.value,
            static(STATUS_ICONS[status]),
            status.label,
        )

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: Token) -> str:
        """A personal access token's scopes (its access tokens' scope claim); "-" for others."""
        return " ".join(obj.scopes) if obj.kind == Kind.PERSONAL and obj.scopes else "-"

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: Token) -> str:
        return relative_time(obj.created_at)

    @admin.display(description=_("expires"), ordering="expires_at")
    def expires(self, obj: Token) -> str:
        return relative_time(obj.expires_at)

    @admin.display(description=_("last used"), ordering="last_used_at")
    def last_used(self, obj: Token) -> str:
        return relative_time(obj.last_used_at)

    @admin.display(description=_("status"), ordering="revoked_at")
    def status(self, obj: Token) -> str:
        """The badge; for a revoked session also why, by whom and when."""
        if obj.revoked_at is None:
            return self.status_badge(obj)
        return format_html(
            '{}<div class="help" style="margin: 3px 0 0; padding: 0; min-width: 12em">{}, {}</div>',
            self.status_badge(obj),
            self.revoked_how(obj),
            relative_time(obj.revoked_at),
        )

    @admin.display(description=_("revoke reason"), ordering="revoke_reason")
    def revoked_how(self, obj: Token) -> str:
        if not obj.revoke_reason:
            return "-"
        reason = obj.get_revoke_reason_display()
        by = getattr(obj, "revoked_by_name", None)
        if by and obj.revoke_reason == RevokeReason.ADMIN:
            return gettext("%(reason)s (%(user)s)") % {"reason": reason, "user": by}
        return str(reason)

    @admin.display(description=_("claims of its access tokens"))
    def token_claims(self, obj: Token) -> str:
        claims = {"sub": str(obj.user_id), "sid": obj.pk, **obj.claims}
        if obj.kind == Kind.PERSONAL:
            claims["scope"] = " ".join(obj.scopes)  # as mint_access_token sets it
        return format_html(
            '<pre style="margin: 0; white-space: pre-wrap">{}</pre>',
            json.dumps(claims, indent=2, ensure_ascii=False, default=str),
        )

    @admin.display(description=_("newest first"))
    def security_events(self, obj: Token) -> str:
        return session_events(obj)

    # -- queryset, search, permissions, forms ---------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[TokenChangeList]:
        return TokenChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "media" in context:  # the user filter's select2
            context["media"] += self.user_widget().media
        return response

    def user_widget(self) -> UserAutocomplete:
        return UserAutocomplete(Token._meta.get_field("user"), self.admin_site)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        """What the search box searches (``get_search_results`` does it, a user lookup first)."""
        user_model = get_user_model()
        fields = [f"user__{username_field()}"]
        email = user_model.get_email_field_name()
        if any(f.name == email for f in user_model._meta.concrete_fields):
            fields.append(f"user__{email}")
        return [*fields, "description", "=id"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Token], search_term: str
    ) -> tuple[QuerySet[Token], bool]:
        return search_sessions(queryset, search_term), False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """``user`` autocompletes from this admin's own view: only users the actor may issue
        for (the form narrows its choices to the same users)."""
        if db_field.name == "user":
            kwargs.setdefault(
                "widget", UserAutocomplete(db_field, self.admin_site, using=kwargs.get("using"))
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_delete_permission(request)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoke instead: rows stay, listed as revoked
        return actions

    def get_fieldsets(self, request: HttpRequest, obj: Token | None = None) -> Any:
        if obj is None:
            return [(None, {"fields": ADD_FIELDS})]
        return [
            (None, {"fields": self.session_fields}),
            (_("Times"), {"fields": self.time_fields}),
            (_("Client at issue"), {"fields": ["ip", "user_agent"]}),
            (
                _("Claims"),
                {
                    "fields": ["token_claims"],
                    "description": _(
                        "Every access token of this session carries these claims, plus iss, "
                        "aud, client_id, iat, nbf, exp and jti, set when it is minted."
                    ),
                },
            ),
            (_("Security events"), {"fields": ["security_events"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Token | None = None) -> Any:
        if obj is None:
            return []
        if obj.revoked_at is not None:
            return self.view_fields
        return [name for name in self.view_fields if name != "description"]

    def get_form(
        self, request: HttpRequest, obj: Token | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm]:
        """The create form for a new session (``views.create_view``), else the view page's."""
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Token, form: Any, change: bool) -> None:
        """The view page saves the description only: a full save could undo a revocation
        made meanwhile. (Sessions are created by ``views.create_view``, never saved here.)"""
        obj.save(update_fields=["description"])

    # -- the view page --------------------------------------------------------------------

    @method_decorator(sensitive_post_parameters())
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra: dict[str, Any] = {
            "show_delete": False,
            "show_save_and_add_another": False,
            "can_mint": False,
            "can_revoke": self.has_revoke_permission(request),
        }
        session = self.get_object(request, unquote(object_id))
        if session is not None:
            extra["can_mint"] = may_issue_for(request.user, session.user, MINT)
            extra["title"] = gettext("Token of %(user)s") % {"user": session.user.get_username()}
            extra["subtitle"] = session.pk
        return no_store(
            super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})
        )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Sessions are revoked, not deleted: the admin's delete page leads to revoke."""
        return HttpResponseRedirect(self.url("revoke", unquote(object_id)))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # PostgreSQL refuses NUL in text: an id holding one names no session (404, not 500).
        if "\x00" in object_id:
            return None
        session = super().get_object(request, object_id, from_field)
        if session is not None:
            attach_revokers([session])
        return session

    # -- urls -----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """The admin's own URLs, with create (``add``) and the screens of ``views.py``
        served by plain views given this admin."""
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        users = UserAutocompleteView.as_view(admin_site=self.admin_site, model_admin=self)
        given = {"model_admin": self}
        ours = [
            path("add/", wrap(create_view), given, name=f"{name}_add"),
            path("user-autocomplete/", wrap(users), name=USER_AUTOCOMPLETE),
            path("<path:object_id>/mint/", wrap(mint_view), given, name=f"{name}_mint"),
            path("<path:object_id>/revoke/", wrap(revoke_view), given, name=f"{name}_revoke"),
            path(
                "revoke-user/<path:user_id>/",
                wrap(revoke_user_view),
                given,
                name=f"{name}_revoke_user",
            ),
        ]
        replaced = {pattern.name for pattern in ours}
        return [*ours, *(p for p in super().get_urls() if p.name not in replaced)]

    def url(self, view: str, *args: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=[quote(arg) for arg in args])

    # -- actions --------------------------------------------------------------------------

    @admin.action(permissions=["delete"], description=_("Revoke the selected sessions"))
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Token]) -> Any:
        pks = list(queryset.values_list("pk", flat=True))
        if request.POST.get("post") == "yes":
            revoked = revoke_logged(request, Token.objects.filter(pk__in=pks))
            self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            return None
        sessions = Token.objects.filter(pk__in=pks).select_related("user")
        title = gettext("Revoke the selected sessions?")
        return render_revoke(self, request, title, sessions, action="revoke_selected")

    @admin.action(
        permissions=["delete"], description=_("Revoke every session of the selected users")
    )
    def revoke_all_of_users(self, request: HttpRequest, queryset: QuerySet[Token]) -> Any:
        pks = list(queryset.values_list("pk", flat=True))
        user_ids = set(queryset.values_list("user_id", flat=True))
        if request.POST.get("post") == "yes":
            revoked = revoke_logged(request, Token.objects.filter(user_id__in=user_ids))
            self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            return None
        sessions = Token.objects.live().filter(user_id__in=user_ids).select_related("user")
        title = gettext("Revoke every session of the selected users?")
        return render_revoke(
            self, request, title, sessions, action="revoke_all_of_users", selected=pks
        )
