"""``RefreshToken.parent``: the token whose rotation by ``refresh/`` made this one, read by
``REFRESH_REUSE_GRACE``. No constraint and no index: nothing looks a row up by its parent, and
a session's family is still deleted in one statement. Existing rows have none: a token rotated
before this migration is reuse when presented again, as it was.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cocart_jwt", "0006_step_up"),
    ]

    operations = [
        migrations.AddField(
            model_name="refreshtoken",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="cocart_jwt.refreshtoken",
                verbose_name="parent",
            ),
        ),
    ]
