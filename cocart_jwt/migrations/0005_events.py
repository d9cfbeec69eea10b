"""Security events (``TokenEvent``): a user's events newest first, a session's, pruning by age.

A new table: its indexes are built with it, on no rows, so nothing waits for them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import cocart_jwt.utils


class Migration(migrations.Migration):
    dependencies = [
        ("cocart_jwt", "0004_admin_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TokenEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sid", models.CharField(max_length=64, verbose_name="session id")),
                (
                    "event",
                    models.CharField(
                        choices=[
                            ("issued", "Session started"),
                            ("refreshed", "Tokens refreshed"),
                            ("reuse_grace", "Refresh retried within the grace period"),
                            ("reused", "Spent refresh token presented again"),
                            ("revoked", "Session revoked"),
                            ("login_link_used", "Login link used"),
                            ("reauthenticated", "Password confirmed again"),
                        ],
                        max_length=32,
                        verbose_name="event",
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("logout", "Logged out"),
                            ("logout_all", "Logged out everywhere"),
                            ("session_deleted", "Session deleted by its user"),
                            ("refresh_token_reused", "Refresh token reused"),
                            ("max_tokens", "Too many sessions; oldest evicted"),
                            ("password_change", "Password changed"),
                            ("email_change", "Email changed"),
                            ("deactivation", "User deactivated"),
                            ("admin", "Revoked by an administrator"),
                            ("command", "Revoked from the command line"),
                        ],
                        max_length=32,
                        verbose_name="reason",
                    ),
                ),
                (
                    "ip",
                    models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address"),
                ),
                (
                    "user_agent",
                    models.CharField(blank=True, max_length=255, verbose_name="user agent"),
                ),
                ("at", models.DateTimeField(default=cocart_jwt.utils.now, verbose_name="at")),
                (
                    "user",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="jwt_events",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "security event",
                "verbose_name_plural": "security events",
                "ordering": ["-at", "-id"],
                "indexes": [
                    models.Index(fields=["user", "at", "id"], name="cocart_jwt_event_user_idx"),
                    models.Index(fields=["sid", "at"], name="cocart_jwt_event_sid_idx"),
                    models.Index(fields=["at", "id"], name="cocart_jwt_event_at_idx"),
                ],
            },
        ),
    ]
