"""The token admin's own screens: create, mint, revoke one session, revoke a user's sessions.

Plain views, each given the ``TokenAdmin`` as ``model_admin`` by the URL pattern that
``TokenAdmin.get_urls`` wires behind ``admin_site.admin_view`` (staff login, CSRF, never
cached); all run behind ``sensitive_post_parameters``. Create and mint show an access token
(a refresh token too, at create) and a login link once: rendered from the POST that made them,
never stored, sent with ``no_store`` and logged. Revocations use the registry's own
``revoke()`` (reason ``admin``) and log one ``LogEntry`` per session, naming who.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from .. import login_links
from ..choices import Kind, Refusal, RevokeReason, Status
from ..http import no_store
from ..impersonation import MINT, refused_attempt
from ..issued import TooManyPersonalTokens
from ..link_views import URLS_HINT, login_link_routed
from ..managers import IssuedTokens, TokenQuerySet
from ..models import Token
from ..parsing import format_duration
from ..shown_once import ShownOnce
from ..tokens import AccessToken, mint_access_token
from ..utils import now
from .forms import TokenCreateForm

if TYPE_CHECKING:
    from . import TokenAdmin

ISSUED_TEMPLATE = "admin/cocart_jwt/token/issued.html"
REVOKE_TEMPLATE = "admin/cocart_jwt/token/revoke_confirmation.html"

# What the mint screen says for each reason the session's tokens are refused
# (``Token.refusal_reason``): minting one would hand out a token that cannot work.
REFUSAL_MESSAGES = {
    Refusal.REVOKED: _("This session is revoked: a token of it would be refused."),
    Refusal.EXPIRED: _("This session has expired: a token of it would be refused."),
    Refusal.IDLE: _(
        "This session was unused for longer than its idle timeout: a token of it would be refused."
    ),
    Refusal.USER_INACTIVE: _(
        "The user of this session is inactive: a token of it would be refused."
    ),
}


# -- create -----------------------------------------------------------------------------


@sensitive_post_parameters()
def create_view(request: HttpRequest, model_admin: TokenAdmin) -> HttpResponse:
    """GET: the form. POST: a new session, its tokens and a login link, logged as the
    addition and shown once; or the form again with its errors (the user's personal tokens
    at MAX_PATS_PER_USER among them: nothing is issued)."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if not login_link_routed():
        return without_login_link_page(model_admin, request, leave_to(model_admin, request))
    form_class = cast(type[TokenCreateForm], model_admin.get_form(request))
    if request.method == "POST":
        form = form_class(request.POST, actor=request.user)
        if form.is_valid():
            try:
                return issue_session(model_admin, request, form.cleaned_data)
            except TooManyPersonalTokens as refused:
                form.personal_limit_reached(refused.limit)
    else:
        initial = model_admin.get_changeform_initial_data(request)
        form = form_class(initial=initial, actor=request.user)
    return render_create_form(model_admin, request, form)


def issue_session(
    model_admin: TokenAdmin, request: HttpRequest, data: dict[str, Any]
) -> HttpResponse:
    user = data["user"]
    scopes = data["scopes"]
    with transaction.atomic(using=router.db_for_write(Token)):
        issued = Token.objects.issue(
            user,
            refreshable=data["refreshable"],
            lifetime=data["lifetime"],
            description=data["description"],
            claims=data["claims"],
            request=request,
            # For another user, this request is not the holder's: bind on first use.
            holder_request=user.pk == request.user.pk,
            # Scopes make a personal access token; without, an administrator's, in no limit.
            kind=Kind.PERSONAL if scopes else Kind.ADMIN,
            scopes=scopes,
        )
        link = link_of(issued.session, request)
        model_admin.log_addition(request, issued.session, issued_message(data))
    return render_issued(
        model_admin,
        request,
        gettext("Token created for %(user)s") % {"user": user.get_username()},
        issued.session,
        access_token_of(issued),
        link,
        refresh_token=issued.refresh_token,
    )


def issued_message(data: dict[str, Any]) -> str:
    """The change message of the addition, in the session's history."""
    if data["scopes"]:
        return gettext(
            "Issued a personal access token (scopes %(scopes)s, lifetime %(lifetime)s), shown once."
        ) % {"scopes": " ".join(data["scopes"]), "lifetime": format_duration(data["lifetime"])}
    return gettext(
        "Issued a token (lifetime %(lifetime)s, %(kind)s) and a login link, shown once."
    ) % {
        "lifetime": format_duration(data["lifetime"]),
        "kind": gettext("refreshable") if data["refreshable"] else gettext("not refreshable"),
    }


def access_token_of(issued: IssuedTokens) -> AccessToken:
    """The access token of ``issued`` with the claims it was signed with, to show them."""
    claims = issued.access_claims
    return AccessToken(issued.access_token, issued.access_expires_at, claims["jti"], claims)


def render_create_form(
    model_admin: TokenAdmin, request: HttpRequest, form: TokenCreateForm
) -> HttpResponse:
    """The add page, as the admin renders it: fieldsets, widgets' media, errors."""
    fieldsets = list(model_admin.get_fieldsets(request))
    admin_form = helpers.AdminForm(
        form,
        fieldsets,
        model_admin.get_prepopulated_fields(request),
        model_admin.get_readonly_fields(request),
        model_admin=model_admin,
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Add %s") % model_admin.opts.verbose_name,
        "adminform": admin_form,
        "media": model_admin.media + admin_form.media,
        "inline_admin_formsets": [],
        "errors": helpers.AdminErrorList(form, []),
        "preserved_filters": model_admin.get_preserved_filters(request),
        # One session per POST: the result page is the next step, not another form.
        "show_save_and_add_another": False,
        "show_save_and_continue": False,
    }
    return no_store(model_admin.render_change_form(request, context, add=True))


# -- mint -------------------------------------------------------------------------------


@sensitive_post_parameters()
def mint_view(request: HttpRequest, object_id: str, model_admin: TokenAdmin) -> HttpResponse:
    """POST: a fresh access token of the session and a new login link, shown once."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    session = session_or_404(model_admin, request, object_id)
    if refused_attempt(request.user, session.user, MINT):
        raise PermissionDenied  # a token of another user's session is impersonation
    change_url = model_admin.url("change", session.pk)
    if request.method != "POST":
        return HttpResponseRedirect(change_url)
    if not login_link_routed():
        return without_login_link_page(model_admin, request, change_url)
    refusal = session.refusal_reason()
    if refusal is not None:
        model_admin.message_user(request, str(REFUSAL_MESSAGES[refusal]), messages.ERROR)
        return HttpResponseRedirect(change_url)
    with transaction.atomic(using=router.db_for_write(Token)):
        access = mint_access_token(session, session.user, now())
        link = link_of(session, request)
        minted = (
            gettext("Minted a new access token, shown once.")
            if link is None
            else gettext("Minted a new access token and a login link, shown once.")
        )
        model_admin.log_change(request, session, minted)
    title = gettext("New access token for %(user)s") % {"user": session.user.get_username()}
    return render_issued(model_admin, request, title, session, access, link)


# -- what create and mint share ---------------------------------------------------------


def link_of(session: Token, request: HttpRequest) -> login_links.IssuedLink | None:
    """A login link of ``session``; none for a personal access token, which is limited to its
    scopes, while a link's browser session would have all the user's rights."""
    if session.kind == Kind.PERSONAL:
        return None
    return login_links.issue(session, created_by=request.user)


def render_issued(
    model_admin: TokenAdmin,
    request: HttpRequest,
    title: str,
    session: Token,
    access: AccessToken,
    link: login_links.IssuedLink | None,
    refresh_token: str | None = None,
) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "session": session,
        # ShownOnce: a context is logged (repr) by django.template at DEBUG.
        "access_token": ShownOnce(access.token),
        "access_expires_at": access.expires_at,
        "refresh_token": None if refresh_token is None else ShownOnce(refresh_token),
        "claims": pretty_json(access.claims),
        "login_link": None if link is None else ShownOnce(link.url(request)),
        "login_link_expires_at": None if link is None else link.expires_at,
        "has_view_permission": model_admin.has_view_permission(request, session),
    }
    return no_store(TemplateResponse(request, ISSUED_TEMPLATE, context))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def without_login_link_page(
    model_admin: TokenAdmin, request: HttpRequest, redirect_to: str
) -> HttpResponse:
    """Issue nothing when ``cocart_jwt.urls`` is not routed: the login link shown with the
    tokens would have no page to open (check ``cocart_jwt.E016`` says it too)."""
    model_admin.message_user(
        request,
        gettext(
            "No token can be issued here: cocart_jwt.urls is not in this site's URLconf, "
            "so the login link issued with it would have no page. %(fix)s"
        )
        % {"fix": URLS_HINT},
        messages.ERROR,
    )
    return HttpResponseRedirect(redirect_to)


def leave_to(model_admin: TokenAdmin, request: HttpRequest) -> str:
    """The list of sessions, or the admin's index for whoever may not see it."""
    if model_admin.has_view_permission(request):
        return model_admin.url("changelist")
    return reverse(f"{model_admin.admin_site.name}:index")


def session_or_404(model_admin: TokenAdmin, request: HttpRequest, object_id: str) -> Token:
    session = model_admin.get_object(request, unquote(object_id))
    if session is None:
        raise Http404(gettext("No such session."))
    return cast(Token, session)


# -- revoke -----------------------------------------------------------------------------


@sensitive_post_parameters()
def revoke_view(request: HttpRequest, object_id: str, model_admin: TokenAdmin) -> HttpResponse:
    """GET: confirm; POST: revoke this session."""
    if not model_admin.has_revoke_permission(request):
        raise PermissionDenied
    session = session_or_404(model_admin, request, object_id)
    change_url = model_admin.url("change", session.pk)
    if request.method != "POST":
        title = gettext("Revoke this session?")
        return render_revoke(model_admin, request, title, [session], cancel_url=change_url)
    revoked = revoke_logged(request, Token.objects.filter(pk=session.pk))
    if revoked:
        model_admin.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
    else:
        model_admin.message_user(
            request, gettext("This session was already revoked."), messages.WARNING
        )
    return HttpResponseRedirect(change_url)


@sensitive_post_parameters()
def revoke_user_view(request: HttpRequest, user_id: str, model_admin: TokenAdmin) -> HttpResponse:
    """GET: confirm; POST: revoke every live session of one user."""
    if not model_admin.has_revoke_permission(request):
        raise PermissionDenied
    user = user_or_404(user_id)
    user_pk = Token._meta.get_field("user").target_field.name
    changelist = f"{model_admin.url('changelist')}?user__{user_pk}__exact={quote(user.pk)}"
    if request.method == "POST":
        revoked = revoke_logged(request, Token.objects.filter(user=user))
        model_admin.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
        return HttpResponseRedirect(changelist)
    title = gettext("Revoke every session of %(user)s?") % {"user": user.get_username()}
    sessions = Token.objects.live().filter(user=user).select_related("user")
    return render_revoke(model_admin, request, title, sessions, cancel_url=changelist)


def user_or_404(user_id: str) -> Any:
    try:
        user = get_user_model()._default_manager.filter(pk=unquote(user_id)).first()
    except (ValueError, ValidationError):  # not a primary key of this user model
        user = None
    if user is None:
        raise Http404(gettext("No such user."))
    return user


def revoke_logged(request: HttpRequest, sessions: TokenQuerySet) -> list[Token]:
    """Revoke (reason ``admin``) and log who did it, one ``LogEntry`` per session revoked;
    the revoked sessions. The "revoked by" column reads these entries."""
    with transaction.atomic(using=router.db_for_write(Token)):
        revoked = sessions.revoke(RevokeReason.ADMIN)
        if revoked:
            LogEntry.objects.log_actions(
                user_id=cast(Any, request.user.pk),
                queryset=revoked,
                action_flag=CHANGE,
                change_message=revoke_message(),
            )
    return revoked


def revoke_message() -> str:
    return gettext("Revoked: %(reason)s.") % {"reason": RevokeReason.ADMIN.label}


def revoked_count_message(count: int) -> str:
    return ngettext("Revoked %(count)d session.", "Revoked %(count)d sessions.", count) % {
        "count": count
    }


def render_revoke(
    model_admin: TokenAdmin,
    request: HttpRequest,
    title: str,
    sessions: Iterable[Token],
    *,
    action: str | None = None,
    selected: Iterable[str] | None = None,
    cancel_url: str | None = None,
) -> HttpResponse:
    """The confirmation page of a revocation: the sessions, how many are live, the way back.

    From an action, it posts back to the changelist with ``action`` and ``selected``."""
    sessions = list(sessions)
    live = [session for session in sessions if session.status == Status.VALID]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "sessions": [(session, Status(session.status).label) for session in sessions],
        "live_count": len(live),
        "action": action,
        "selected": list(selected) if selected is not None else [s.pk for s in sessions],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "cancel_url": cancel_url,
    }
    return no_store(TemplateResponse(request, REVOKE_TEMPLATE, context))
