"""Key hygiene: API tokens (list, revoke), app secret rotation, per-app device limits."""
