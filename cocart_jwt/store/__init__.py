"""The session store: the live session of a sid, with its user, as the verifier needs it.

- ``strict``: the one query, session JOIN user by primary key, compiled once per database.
- ``cached``: cached mode's entries, tombstones, stale markers and touch keys; it imports no
  model, so the managers can write tombstones from inside a revocation.
- ``redis_lookup``: cached mode's lookup on Redis, the entry and the touch claim in one command.
- ``instances``: model instances from a snapshot's values, as ``Model.from_db`` makes them.
- ``live``: ``load_live_session(sid, at)``, which chooses between them and refuses a session
  whose tokens are not accepted (``Token.refusal_reason``).
"""
