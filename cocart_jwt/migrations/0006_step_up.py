"""Step-up: when a session's user last presented credentials (``auth_time``), and the
revoke reason of ``logout/others/``."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cocart_jwt", "0005_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="token",
            name="authenticated_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="authenticated at"
            ),
        ),
        migrations.AlterField(
            model_name="token",
            name="revoke_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("logout", "Logged out"),
                    ("logout_all", "Logged out everywhere"),
                    ("logout_others", "Logged out from another session"),
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
                verbose_name="revoke reason",
            ),
        ),
        migrations.AlterField(
            model_name="tokenevent",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("logout", "Logged out"),
                    ("logout_all", "Logged out everywhere"),
                    ("logout_others", "Logged out from another session"),
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
    ]
