"""The session store: the strict query (one SELECT of session and user) and cached mode's
entries (snapshots, tombstones, stale markers, touch keys), as the verifier reads them."""
