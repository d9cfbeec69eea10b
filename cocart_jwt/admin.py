"""Admin screens of the token registry: list, create (shown once), view, mint, revoke.

Permissions map onto the model's: *view* lists and shows sessions, *add* creates one,
*change* mints a fresh access token and login link of a session (and edits its
description), *delete* revokes (rows are never deleted here: revoked sessions stay listed).
Issuing for another user is impersonation: the create form, the mint view and the user
autocomplete ask ``cocart_jwt.impersonation`` who may issue for whom.
Every page that carries a token is rendered from the POST that made it, never stored,
sent with ``Cache-Control: no-store`` behind ``sensitive_post_parameters``, and logged.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import login_links
from .admin_autocomplete import URL_NAME as USER_AUTOCOMPLETE
from .admin_autocomplete import UserAutocomplete, UserAutocompleteView
from .admin_revoke import RevokeAdminMixin, sensitive
from .checks import URLS_HINT, login_link_routed
from .forms import TokenCreateForm, format_lifetime
from .impersonation import MINT, may_issue_for, refused_attempt
from .login_links import IssuedLink
from .managers import IssuedTokens, user_is_active
from .models import RevokeReason, Status, Token
from .shown_once import ShownOnce
from .tokens import decode_json_object, mint_access_token
from .utils import no_store, now

STATUS_ICONS = {
    Status.VALID: "admin/img/icon-yes.svg",
    Status.EXPIRED: "admin/img/icon-clock.svg",
    Status.REVOKED: "admin/img/icon-no.svg",
}
ISSUED_TEMPLATE = "admin/cocart_jwt/token/issued.html"
ISSUED_ATTR = "_cocart_jwt_issued"  # on the request: the add view's secrets, for one response
ADD_FIELDS = ["user", "lifetime", "refreshable", "claims", "description"]


def username_field() -> str:
    return get_user_model().USERNAME_FIELD


def unusable_reason(session: Token) -> str | None:
    """Why no token of ``session`` can be used, or None."""
    if session.revoked_at is not None:
        return gettext("This session is revoked: a token of it would be refused.")
    if session.expires_at <= now():
        return gettext("This session has expired: a token of it would be refused.")
    if not user_is_active(session.user):
        return gettext("The user of this session is inactive: a token of it would be refused.")
    return None


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


def decoded_claims(token: str) -> dict[str, Any]:
    return decode_json_object(token.split(".")[1], "payload")


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Token]) -> QuerySet[Token]:
        at = now()
        if self.value() == Status.VALID:
            return queryset.filter(revoked_at__isnull=True, expires_at__gt=at)
        if self.value() == Status.EXPIRED:
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=at)
        if self.value() == Status.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Token)
class TokenAdmin(RevokeAdminMixin, admin.ModelAdmin):
    list_display = ["short_id", "user", "status", "description"]
    list_display += ["created", "expires", "last_used", "ip"]
    list_display_links = ["short_id"]
    list_filter = [StatusFilter, ("user", admin.RelatedOnlyFieldListFilter)]
    list_filter += ["created_at", "expires_at", "refreshable"]
    list_select_related = ["user"]
    actions = ["revoke_selected", "revoke_all_of_users"]
    # The view page, in its fieldsets: session, times, client, claims.
    view_fields = ["id", "user", "status_badge", "description", "refreshable"]
    view_fields += ["created_at", "expires_at", "last_used_at", "revoked_at", "revoked_how"]
    view_fields += ["ip", "user_agent", "token_claims"]

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
        return format_html(
            '<pre style="margin: 0; white-space: pre-wrap">{}</pre>',
            json.dumps(claims, indent=2, ensure_ascii=False, default=str),
        )

    # -- queryset, search, permissions, forms ---------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Token]:
        """Sessions with the name of the admin who revoked each (the first change logged at
        or after its revocation: the revoke itself), in the same query."""
        revoker = LogEntry.objects.filter(
            content_type__app_label=Token._meta.app_label,
            content_type__model=Token._meta.model_name,
            object_id=OuterRef("pk"),
            action_flag=CHANGE,
            action_time__gte=OuterRef("revoked_at"),
        ).order_by("action_time")
        name = revoker.values(f"user__{username_field()}")[:1]
        return super().get_queryset(request).annotate(revoked_by_name=Subquery(name))

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        user_model = get_user_model()
        fields = [f"user__{username_field()}"]
        email = user_model.get_email_field_name()
        if any(f.name == email for f in user_model._meta.concrete_fields):
            fields.append(f"user__{email}")
        return [*fields, "description", "=id"]

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
            (None, {"fields": self.view_fields[:5]}),
            (_("Times"), {"fields": self.view_fields[5:10]}),
            (_("Client at issue"), {"fields": ["ip", "user_agent"]}),
            (
                _("Claims"),
                {
                    "fields": ["token_claims"],
                    "description": _(
                        "Every access token of this session carries these claims, plus iss, "
                        "aud, iat, nbf, exp and jti, set when it is minted."
                    ),
                },
            ),
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
        if obj is None:
            kwargs["form"] = TokenCreateForm
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None:
            # The admin builds the form without our arguments: bind who issues to the class.
            form = type(form.__name__, (form,), {"actor": request.user})
        return form

    # -- create: issue, then show the tokens once ------------------------------------------

    def save_model(self, request: HttpRequest, obj: Token, form: Any, change: bool) -> None:
        if change:
            # Only the description: a full save could undo a revocation made meanwhile.
            obj.save(update_fields=["description"])
            return
        data = form.cleaned_data
        issued = Token.objects.issue(
            data["user"],
            refreshable=data["refreshable"],
            lifetime=data["lifetime"],
            description=data["description"],
            claims=data["claims"],
            request=request,
            # For another user, this request is not the holder's: bind on first use.
            holder_request=data["user"].pk == request.user.pk,
        )
        link = login_links.issue(issued.session, created_by=request.user)
        setattr(request, ISSUED_ATTR, (issued, link))
        for field in Token._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.session, field.attname))
        obj._state.adding = False
        obj._state.db = issued.session._state.db

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        if not add:
            return super().construct_change_message(request, form, formsets, add)
        data = form.cleaned_data
        return gettext(
            "Issued a token (lifetime %(lifetime)s, %(kind)s) and a login link, shown once."
        ) % {
            "lifetime": format_lifetime(data["lifetime"]),
            "kind": gettext("refreshable") if data["refreshable"] else gettext("not refreshable"),
        }

    def response_add(
        self, request: HttpRequest, obj: Token, post_url_continue: str | None = None
    ) -> HttpResponse:
        issued: tuple[IssuedTokens, IssuedLink] | None = getattr(request, ISSUED_ATTR, None)
        if issued is None:
            return super().response_add(request, obj, post_url_continue)
        tokens, link = issued
        return self.render_issued(
            request,
            gettext("Token created for %(user)s") % {"user": tokens.user.get_username()},
            tokens.session,
            tokens.access_token,
            tokens.access_expires_at,
            link,
            refresh_token=tokens.refresh_token,
        )

    def render_issued(
        self,
        request: HttpRequest,
        title: str,
        session: Token,
        access_token: str,
        access_expires_at: datetime,
        link: IssuedLink,
        refresh_token: str | None = None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "session": session,
            # ShownOnce: a context is logged (repr) by django.template at DEBUG.
            "access_token": ShownOnce(access_token),
            "access_expires_at": access_expires_at,
            "refresh_token": None if refresh_token is None else ShownOnce(refresh_token),
            "claims": json.dumps(decoded_claims(access_token), indent=2, ensure_ascii=False),
            "login_link": ShownOnce(link.url(request)),
            "login_link_expires_at": link.expires_at,
            "has_view_permission": self.has_view_permission(request, session),
        }
        return no_store(TemplateResponse(request, ISSUED_TEMPLATE, context))

    # -- views ----------------------------------------------------------------------------

    def without_login_link_page(self, request: HttpRequest, redirect_to: str) -> HttpResponse:
        """Issue nothing when ``cocart_jwt.urls`` is not routed: the login link shown with the
        tokens would have no page to open (check ``cocart_jwt.E016`` says it too)."""
        self.message_user(
            request,
            gettext(
                "No token can be issued here: cocart_jwt.urls is not in this site's URLconf, "
                "so the login link issued with it would have no page. %(fix)s"
            )
            % {"fix": URLS_HINT},
            messages.ERROR,
        )
        return HttpResponseRedirect(redirect_to)

    @sensitive
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.has_add_permission(request) and not login_link_routed():
            if self.has_view_permission(request):
                return self.without_login_link_page(request, self.url("changelist"))
            return self.without_login_link_page(request, reverse(f"{self.admin_site.name}:index"))
        extra = {"show_save_and_add_another": False, "show_save_and_continue": False}
        return no_store(super().add_view(request, form_url, {**extra, **(extra_context or {})}))

    @sensitive
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

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        users = UserAutocompleteView.as_view(admin_site=self.admin_site, model_admin=self)
        return [
            path("user-autocomplete/", wrap(users), name=USER_AUTOCOMPLETE),
            path("<path:object_id>/mint/", wrap(self.mint_view), name=f"{name}_mint"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name=f"{name}_revoke"),
            path(
                "revoke-user/<path:user_id>/",
                wrap(self.revoke_user_view),
                name=f"{name}_revoke_user",
            ),
            *super().get_urls(),
        ]

    def url(self, view: str, *args: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=[quote(arg) for arg in args])

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # PostgreSQL refuses NUL in text: an id holding one names no session (404, not 500).
        if "\x00" in object_id:
            return None
        return super().get_object(request, object_id, from_field)

    def session_or_404(self, request: HttpRequest, object_id: str) -> Token:
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404(gettext("No such session."))
        return session

    @sensitive
    def mint_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: a fresh access token of the session and a new login link, shown once."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        session = self.session_or_404(request, object_id)
        if refused_attempt(request.user, session.user, MINT):
            raise PermissionDenied  # a token of another user's session is impersonation
        change_url = self.url("change", session.pk)
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        if not login_link_routed():
            return self.without_login_link_page(request, change_url)
        problem = unusable_reason(session)
        if problem:
            self.message_user(request, problem, messages.ERROR)
            return HttpResponseRedirect(change_url)
        with transaction.atomic(using=router.db_for_write(Token)):
            access = mint_access_token(session, session.user, now())
            link = login_links.issue(session, created_by=request.user)
            self.log_change(
                request,
                session,
                gettext("Minted a new access token and a login link, shown once."),
            )
        title = gettext("New access token for %(user)s") % {"user": session.user.get_username()}
        return self.render_issued(request, title, session, access.token, access.expires_at, link)
