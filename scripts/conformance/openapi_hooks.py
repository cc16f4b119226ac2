"""Schemathesis hooks for scripts/conformance/openapi.sh.

Loaded with SCHEMATHESIS_HOOKS=openapi_hooks (this folder on PYTHONPATH). They run right
before every request of every phase and change nothing but two things:

* The signed-in admin is the run's only credential. Schemathesis reuses names it has
  seen in answers (GET /users lists `admin`), so it would sooner or later expire, lock,
  disable, demote, re-password or delete that very user, and every later request would
  be answered 401/403. A request whose path names it (its user name, or its SCIM id
  from OPENAPI_PROTECT) is sent for a harmless made-up name instead.
* Path parameters are also drawn from OPENAPI_FIXTURES (JSON: parameter name -> values,
  printed by openapi_fixtures.py), names of things that exist, so generated requests
  reach existing users, groups, projects, keys... and not only 404s.
* Gatehouse calls out to URLs it is given (webhook receivers and proxies, federation
  targets, access-key existence checks). Every string under a `url` or `proxy` key of a
  body is pointed at a closed port on loopback, so no generated address is ever
  contacted.
"""
import json
import os

import schemathesis
from hypothesis import strategies as st

SAFE_URL = "http://127.0.0.1:9/"
PROTECTED = {
    v.strip().lower() for v in os.environ.get("OPENAPI_PROTECT", "admin").split(",") if v.strip()
}
STAND_IN = "openapi-protected"
FIXTURES = json.loads(os.environ.get("OPENAPI_FIXTURES") or "{}")


def _scrub(value):
    if isinstance(value, dict):
        for key, item in list(value.items()):
            if isinstance(item, str) and isinstance(key, str) and key.lower() in ("url", "proxy"):
                value[key] = SAFE_URL
            else:
                _scrub(item)
    elif isinstance(value, list):
        for item in value:
            _scrub(item)


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params:
        for name, value in list(params.items()):
            if isinstance(value, str) and value.strip().lower() in PROTECTED:
                params[name] = STAND_IN
    if isinstance(case.body, (dict, list)):
        _scrub(case.body)


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters or not any(name in FIXTURES for name in path_parameters):
        return st.just(path_parameters)
    return st.fixed_dictionaries({
        name: st.one_of(st.just(value), st.sampled_from(FIXTURES[name])) if name in FIXTURES else st.just(value)
        for name, value in path_parameters.items()
    })
