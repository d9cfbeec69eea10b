"""JWTAuthentication, the DRF class: which header or cookie it reads, what it refuses and
logs, when it records a session's use, the signal it sends."""
