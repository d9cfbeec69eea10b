"""The create form's user autocomplete: only the users the administrator may issue for.

Django's generic admin autocomplete lists what the user admin lists, whoever asks; issuing
for someone is impersonation (``cocart_jwt.impersonation``), so the token admin answers the
select with a view of its own, ``<admin>/cocart_jwt/token/user-autocomplete/``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from ..impersonation import CREATE, MINT, Action, issuable_users, may_issue_for, permission
from ..models import Token

URL_NAME = "cocart_jwt_token_user_autocomplete"


class UserAutocomplete(AutocompleteSelect):
    """Django's select2 widget, asking the token admin's view instead of the generic one."""

    url_name = "%s:" + URL_NAME


def search(users: QuerySet[Any], term: str) -> QuerySet[Any]:
    """Every word of ``term`` in the username or, when the model has one, the email."""
    if "\x00" in term:  # PostgreSQL refuses NUL in text: it matches no one (not a 500)
        return users.none()
    for word in term.split():
        users = users.filter(user_match(word))
    return users


def user_match(word: str) -> Q:
    """``word`` in the username or, when the model has one, the email (any case)."""
    model = get_user_model()
    fields = [model.USERNAME_FIELD]
    email = model.get_email_field_name()
    if any(field.name == email for field in model._meta.concrete_fields):
        fields.append(email)
    match = Q()
    for name in fields:
        match |= Q(**{f"{name}__icontains": word})
    return match


class UserAutocompleteView(AutocompleteJsonView):
    """select2's JSON: the users the signed-in administrator may issue for, 20 a page."""

    model_admin: Any = None  # the TokenAdmin, given to as_view()

    def process_request(self, request: HttpRequest) -> tuple[str, Any, Any, str]:
        field = Token._meta.get_field("user")
        return request.GET.get("term", ""), self.model_admin, field, field.target_field.attname

    def has_perm(self, request: HttpRequest, obj: Any = None) -> bool:
        admin = self.model_admin
        return bool(admin.has_add_permission(request) or admin.has_change_permission(request))

    def action(self) -> Action:
        return CREATE if self.request.user.has_perm(permission(CREATE)) else MINT

    def get_queryset(self) -> QuerySet[Any]:
        users = search(issuable_users(self.request.user, self.action()), self.term)
        return users.order_by(get_user_model().USERNAME_FIELD, "pk")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The page, each user checked by the one rule (SQL cannot see every backend)."""
        context = super().get_context_data(**kwargs)
        actor, action = self.request.user, self.action()
        context["object_list"] = [
            user for user in context["object_list"] if may_issue_for(actor, user, action)
        ]
        return context
