"""Life-cycle signals. Each is sent from one place, with keyword arguments only.

Receivers run inside the transaction that made the change, where there is one.
"""

from django.dispatch import Signal

# A session was created and its first tokens minted (login, admin, CLI).
# Sent by: cocart_jwt.managers.TokenManager.issue
# Arguments: sender (Token), token (the session), user, request (HttpRequest or None).
token_issued = Signal()

# A request was authenticated with an access token (CoCart's cocart_jwt_auth_authenticated).
# Sent by: cocart_jwt.authentication.JWTAuthentication.authenticate
# Arguments: sender (JWTAuthentication), token (the session), user, claims (dict), request.
token_authenticated = Signal()

# A session got new tokens: a refresh, or a login carrying a Bearer of the same user.
# Sent by: cocart_jwt.managers.TokenManager.renew
# Arguments: sender (Token), token (the session), user, request (HttpRequest or None).
token_refreshed = Signal()

# A session was revoked; sent once per session, whatever revoked it.
# Sent by: cocart_jwt.models.TokenQuerySet.revoke
# Arguments: sender (Token), token (the session, revoked_at set), user, reason (a RevokeReason).
token_revoked = Signal()

# A refresh token that had already been used was presented again: the session is revoked.
# Sent by: cocart_jwt.managers.TokenManager.rotate
# Arguments: sender (Token), token (the session), user, request (HttpRequest or None).
refresh_token_reused = Signal()

# A request went over a rate limit and is answered 429.
# Sent by: cocart_jwt.ratelimit.hit
# Arguments: sender (RateLimitExceeded), name (the RATE_LIMITS name), request, usage (a
# ratelimit.Usage: limit, count, reset_in).
rate_limited = Signal()
