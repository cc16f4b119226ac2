"""Schemathesis hooks for scripts/conformance/openapi.sh.

Loaded with SCHEMATHESIS_HOOKS=openapi_hooks (this folder on PYTHONPATH). They run right
before every request of every phase and change nothing but these:

* The signed-in admin is the run's only credential. Schemathesis reuses names it has
  seen in answers (GET /users lists `admin`), so it would sooner or later expire, lock,
  disable, demote, re-password or delete that very user, and every later request would
  be answered 401/403. A request whose path names it (its user name, or its SCIM id
  from OPENAPI_PROTECT) is sent for a harmless made-up name instead.
* Every other request of an operation (but DELETE) names, in its path, things that exist: the
  values of OPENAPI_FIXTURES (JSON rules [path regex, parameter, values], printed by
  openapi_fixtures.py), so generated requests reach existing users, groups, projects,
  keys... and not only 404s.
* A user lock policy that is set is always `enabled: false` (the run sends wrong
  passwords for the admin on purpose, and a policy would lock it), and so is anonymous
  access (requests without credentials must keep meaning 401 for the whole run), and so
  is every LDAP setting (an enabled one would send the run's sign-ins with made-up names
  to a directory, and those would be answered 503 while it cannot be reached).
* Gatehouse calls out to URLs it is given (webhook receivers and proxies, federation
  targets, access-key existence checks, LDAP directories). Every string under a `url`,
  `proxy` or `ldap_url` key of a body is pointed at a closed port on loopback, so no
  generated address is ever contacted.
"""
import json
import os
import re

import schemathesis

SAFE_URL = "http://127.0.0.1:9/"
SAFE_LDAP_URL = "ldap://127.0.0.1:9/dc=example,dc=com"
PROTECTED = {
    v.strip().lower() for v in os.environ.get("OPENAPI_PROTECT", "admin").split(",") if v.strip()
}
STAND_IN = "openapi-protected"
KEEP_OFF = {
    "/artifactory/api/security/userLockPolicy",
    "/access/api/v1/config/security/anonymous_access",
    "/access/api/v1/ldap/settings",
    "/access/api/v1/ldap/settings/{key}",
}
FIXTURES = [(re.compile(path), param, values)
            for path, param, values in json.loads(os.environ.get("OPENAPI_FIXTURES") or "[]")]


def _fixtures_for(path, param):
    for pattern, name, values in FIXTURES:
        if name == param and pattern.search(path):
            return values
    return None


def _scrub(value):
    if isinstance(value, dict):
        for key, item in list(value.items()):
            if isinstance(item, str) and isinstance(key, str) and key.lower() in ("url", "proxy"):
                value[key] = SAFE_URL
            elif isinstance(item, str) and isinstance(key, str) and key.lower() == "ldap_url":
                value[key] = SAFE_LDAP_URL
            else:
                _scrub(item)
    elif isinstance(value, list):
        for item in value:
            _scrub(item)


_calls: dict = {}


def _fixture(case, name, values):
    """A fixture for every other request of an operation, None for the rest. Counted per
    operation, not drawn from the generated values: those include ids the server made
    up in this run (from Schemathesis' pool of values seen in answers), so a choice based
    on them would differ from run to run. The run uses one worker, so the order of an
    operation's requests, and with it this choice, is the same every time."""
    key = (case.method.upper(), case.path, name)
    n = _calls[key] = _calls.get(key, -1) + 1
    return values[(n // 2) % len(values)] if n % 2 == 0 else None


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters or {}
    # DELETE keeps its generated names: deleting the fixtures would take them away from
    # every other operation.
    chosen = {}
    if case.method.upper() != "DELETE":
        for name in params:
            values = _fixtures_for(case.path, name)
            if values:
                chosen[name] = _fixture(case, name, values)
    for name, value in list(params.items()):
        if chosen.get(name):
            params[name] = chosen[name]
        elif isinstance(value, str) and value.strip().lower() in PROTECTED:
            params[name] = STAND_IN
    if isinstance(case.body, (dict, list)):
        _scrub(case.body)
    # The run's wrong-password requests would lock the admin once a lock policy is on;
    # with anonymous access on, requests without credentials would stop meaning 401
    # half-way through the run.
    if case.path in KEEP_OFF and isinstance(case.body, dict):
        case.body["enabled"] = False
