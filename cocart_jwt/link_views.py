"""The login link page (``cocart_jwt:login-link``): GET confirms, POST signs in once.

A GET only shows a confirm page, so a link preview or a mail scanner that fetches the URL
does not use the link up. The POST (CSRF-protected) consumes it atomically, starts a Django
session for its user (tied to the link's registry session: it ends when that one is revoked,
and expires no later) and redirects to a same-host ``next``, else the site's
``LOGIN_REDIRECT_URL``, else the admin for staff or the site's root: a URL without the
token. Refusals are small pages: 400 (malformed or unknown link), 410 (expired, used,
revoked), 429 (rate limited, per client IP, limit ``login_link``).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from django.apps import apps
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django.utils.translation import gettext, gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import login_links, ratelimit
from .http import client_ip, no_store
from .login_links import LinkRefused
from .models import LoginLink
from .shown_once import ShownOnce

logger = logging.getLogger("cocart_jwt")

CONFIRM_TEMPLATE = "cocart_jwt/login_link_confirm.html"
ERROR_TEMPLATE = "cocart_jwt/login_link_error.html"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
URL_NAME = "cocart_jwt:login-link"
URLS_HINT = (
    'Add path("api/auth/", include("cocart_jwt.urls")) to urlpatterns in your ROOT_URLCONF '
    "(from django.urls import include, path)."
)


def login_link_routed() -> bool:
    """Whether ``cocart_jwt.urls`` is in the URLconf: the admin's login links need this page."""
    try:
        reverse(URL_NAME)
    except NoReverseMatch:
        return False
    return True


def private(response: HttpResponse) -> HttpResponse:
    """A page of the link: never cached, its URL (and token) never sent to another site.

    ``same-origin``, not ``no-referrer``: with the latter browsers send ``Origin: null`` on
    the confirming POST, which Django's CSRF check refuses.
    """
    no_store(response)
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def error_page(request: HttpRequest, status: int, title: Any, message: Any) -> HttpResponse:
    context = {"title": title, "message": message, "status": status}
    return private(render(request, ERROR_TEMPLATE, context, status=status))


def refused_page(request: HttpRequest, exc: LinkRefused) -> HttpResponse:
    logger.info("Login link refused: %s", exc.reason)
    if exc.status == login_links.GONE:
        title = gettext_lazy("This login link can no longer be used")
    else:
        title = gettext_lazy("Invalid login link")
    return error_page(request, exc.status, title, exc.message)


def rate_limited_page(request: HttpRequest, exc: ratelimit.RateLimitExceeded) -> HttpResponse:
    response = error_page(
        request,
        429,
        gettext_lazy("Too many attempts"),
        gettext_lazy("Too many login link attempts from your network. Wait a minute, then retry."),
    )
    response["Retry-After"] = str(max(1, exc.usage.reset_in))
    for header, value in exc.usage.headers().items():
        response[header] = value
    return response


def redirect_target(request: HttpRequest) -> str:
    """A same-host ``next`` (no open redirect), else the site's ``LOGIN_REDIRECT_URL`` when it
    set one; else the admin index for staff (when the admin is routed), else the site's root.

    Django's own default, ``/accounts/profile/``, is a page a new site does not have: a
    person who used a link would land on a 404. ``is_overridden`` tells a value the site set
    (even that same one) from Django's default.
    """
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    if settings.is_overridden("LOGIN_REDIRECT_URL"):  # type: ignore[misc]  # not in the stubs
        return resolve_url(settings.LOGIN_REDIRECT_URL)
    if getattr(request.user, "is_staff", False) and apps.is_installed("django.contrib.admin"):
        try:
            return reverse("admin:index")
        except NoReverseMatch:  # installed, but not in the URLconf
            pass
    return get_script_prefix()


def backend_path() -> str:
    """The backend the Django session names: ModelBackend (or a subclass) when configured."""
    paths = list(settings.AUTHENTICATION_BACKENDS)
    for path in paths:
        backend = import_string(path)
        if isinstance(backend, type) and issubclass(backend, ModelBackend):
            return path
    return paths[0] if paths else MODEL_BACKEND


def forget_token_in_url(request: HttpRequest) -> None:
    """Drop the token from this request's query string once it has been read.

    The pages render with the request in their context, and ``repr(request)`` shows its full
    URL: a template that logs its context (``django.template`` at DEBUG) would log the token.
    """
    query = request.GET.copy()
    query.pop("token", None)
    query._mutable = False
    request.GET = cast(Any, query)
    request.META["QUERY_STRING"] = query.urlencode()


def log_sign_in(link: LoginLink) -> None:
    """An admin ``LogEntry`` on the session: its user signed in with a login link."""
    if not apps.is_installed("django.contrib.admin"):
        return
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(
        user_id=link.session.user_id,
        queryset=[link.session],
        action_flag=CHANGE,
        change_message=gettext("Signed in with a single-use login link."),
        single_object=True,
    )


@method_decorator(sensitive_post_parameters("token"), name="dispatch")
@method_decorator(csrf_protect, name="dispatch")
@method_decorator(never_cache, name="dispatch")
class LoginLinkView(View):
    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method in ("GET", "POST"):
            try:
                ratelimit.hit("login_link", client_ip(request) or "unknown", request=request)
            except ratelimit.RateLimitExceeded as exc:
                return rate_limited_page(request, exc)
        return super().dispatch(request, *args, **kwargs)

    @method_decorator(sensitive_variables("raw"))
    def get(self, request: HttpRequest) -> HttpResponse:
        raw = request.GET.get("token")
        forget_token_in_url(request)
        try:
            link = login_links.inspect(raw)
        except LinkRefused as exc:
            return refused_page(request, exc)
        context = {
            "title": gettext_lazy("Sign in"),
            "token": ShownOnce(raw),  # a context is logged (repr) by django.template at DEBUG
            "next": request.GET.get("next", ""),
            "username": link.session.user.get_username(),
            "host": request.get_host(),
            "expires_at": link.expires_at,
        }
        return private(render(request, CONFIRM_TEMPLATE, context))

    @method_decorator(sensitive_variables("raw"))
    def post(self, request: HttpRequest) -> HttpResponse:
        raw = request.POST.get("token") or request.GET.get("token")
        try:
            link = login_links.consume(raw, request)
        except LinkRefused as exc:
            return refused_page(request, exc)
        user = link.session.user
        login(request, user, backend=backend_path())
        if not login_links.bind_browser_session(link, request.session):
            # Revoked between the link check and now: the sign-in must not outlive it.
            request.session.flush()
            request.user = AnonymousUser()
            return refused_page(request, login_links.session_ended("session revoked meanwhile"))
        log_sign_in(link)
        logger.info("Login link %s used: user %s signed in", link.pk, user.pk)
        return private(HttpResponseRedirect(redirect_target(request)))
