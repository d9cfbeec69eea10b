"""The pieces of ``manage.py jwt``; ``management/commands/jwt.py`` only dispatches to them.

``arguments`` declares the subcommands and their options; ``sessions`` lists, creates and
destroys sessions; ``view`` shows a session or an access token; ``cleanup`` deletes dead
sessions in batches; ``keygen`` makes key material; ``output`` is how all of them talk to the
operator (tables, JSON, times, the prompt). Each subcommand is one function
``run_<name>(console, options)``; failures are ``CommandError``.
"""
