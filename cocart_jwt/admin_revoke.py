"""Revocation in the admin: one session, a user's sessions, the selected ones.

Each revocation uses the registry's own ``revoke()`` (reason ``admin``: the signal is sent
and the cached mode's tombstones written) and logs one ``LogEntry`` per session, naming who.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from .managers import TokenQuerySet
from .models import RevokeReason, Status, Token
from .utils import no_store

REVOKE_TEMPLATE = "admin/cocart_jwt/token/revoke_confirmation.html"
sensitive = method_decorator(sensitive_post_parameters())


def revoke_message() -> str:
    return gettext("Revoked: %(reason)s.") % {"reason": RevokeReason.ADMIN.label}


def revoked_count_message(count: int) -> str:
    return ngettext("Revoked %(count)d session.", "Revoked %(count)d sessions.", count) % {
        "count": count
    }


class RevokeAdminMixin:
    """Views and actions of ``TokenAdmin`` that revoke; *delete* permission guards them."""

    # Provided by TokenAdmin / ModelAdmin.
    admin_site: Any
    opts: Any
    has_revoke_permission: Any
    session_or_404: Any
    url: Any
    message_user: Any

    @sensitive
    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: confirm; POST: revoke this session."""
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        session = self.session_or_404(request, object_id)
        if request.method == "POST":
            revoked = self.revoke(request, Token.objects.filter(pk=session.pk))
            if revoked:
                self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            else:
                self.message_user(
                    request, gettext("This session was already revoked."), messages.WARNING
                )
            return HttpResponseRedirect(self.url("change", session.pk))
        return self.render_revoke(
            request,
            gettext("Revoke this session?"),
            [session],
            cancel_url=self.url("change", session.pk),
        )

    @sensitive
    def revoke_user_view(self, request: HttpRequest, user_id: str) -> HttpResponse:
        """GET: confirm; POST: revoke every live session of one user."""
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        manager = get_user_model()._default_manager
        try:
            user = manager.filter(pk=unquote(user_id)).first()
        except (ValueError, ValidationError):
            user = None
        if user is None:
            raise Http404(gettext("No such user."))
        user_pk = Token._meta.get_field("user").target_field.name
        changelist = f"{self.url('changelist')}?user__{user_pk}__exact={quote(user.pk)}"
        if request.method == "POST":
            revoked = self.revoke(request, Token.objects.filter(user=user))
            self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            return HttpResponseRedirect(changelist)
        title = gettext("Revoke every session of %(user)s?") % {"user": user.get_username()}
        sessions = list(Token.objects.live().filter(user=user).select_related("user"))
        return self.render_revoke(request, title, sessions, cancel_url=changelist)

    # -- actions --------------------------------------------------------------------------

    @admin.action(permissions=["delete"], description=_("Revoke the selected sessions"))
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Token]) -> Any:
        pks = list(queryset.values_list("pk", flat=True))
        if request.POST.get("post") == "yes":
            revoked = self.revoke(request, Token.objects.filter(pk__in=pks))
            self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            return None
        sessions = list(Token.objects.filter(pk__in=pks).select_related("user"))
        title = gettext("Revoke the selected sessions?")
        return self.render_revoke(request, title, sessions, action="revoke_selected")

    @admin.action(
        permissions=["delete"], description=_("Revoke every session of the selected users")
    )
    def revoke_all_of_users(self, request: HttpRequest, queryset: QuerySet[Token]) -> Any:
        pks = list(queryset.values_list("pk", flat=True))
        user_ids = set(queryset.values_list("user_id", flat=True))
        if request.POST.get("post") == "yes":
            revoked = self.revoke(request, Token.objects.filter(user_id__in=user_ids))
            self.message_user(request, revoked_count_message(len(revoked)), messages.SUCCESS)
            return None
        sessions = list(Token.objects.live().filter(user_id__in=user_ids).select_related("user"))
        title = gettext("Revoke every session of the selected users?")
        return self.render_revoke(
            request, title, sessions, action="revoke_all_of_users", selected=pks
        )

    # -- revocation -----------------------------------------------------------------------

    def revoke(self, request: HttpRequest, sessions: TokenQuerySet) -> list[Token]:
        """Revoke (reason ``admin``) and log who did it, one ``LogEntry`` per session."""
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

    def render_revoke(
        self,
        request: HttpRequest,
        title: str,
        sessions: Iterable[Token],
        *,
        action: str | None = None,
        selected: Iterable[str] | None = None,
        cancel_url: str | None = None,
    ) -> HttpResponse:
        sessions = list(sessions)
        live = [session for session in sessions if session.status == Status.VALID]
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "sessions": [(session, Status(session.status).label) for session in sessions],
            "live_count": len(live),
            "action": action,
            "selected": list(selected) if selected is not None else [s.pk for s in sessions],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        return no_store(TemplateResponse(request, REVOKE_TEMPLATE, context))
