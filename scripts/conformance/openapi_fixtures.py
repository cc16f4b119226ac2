"""Fixtures for scripts/conformance/openapi.sh: one of each kind of thing, made through the
API before the run, so generated requests also reach existing resources instead of only
404s. Prints a JSON object mapping path parameter names to the values that name them;
openapi_hooks.py offers these beside the generated values. Every URL given to the server
points at a closed port on loopback. A fixture that cannot be made is reported on stderr
and left out (the run still goes on, with less depth).

    GATEHOUSE_URL=... GATEHOUSE_ADMIN_PASSWORD=... python openapi_fixtures.py
"""
import json
import os
import sys

import requests

BASE = os.environ["GATEHOUSE_URL"]
S = requests.Session()
S.auth = ("admin", os.environ["GATEHOUSE_ADMIN_PASSWORD"])
DEAD = "http://127.0.0.1:9"
values: dict[str, list[str]] = {}


def offer(param, value):
    if value and value not in values.setdefault(param, []):
        values[param].append(value)


def call(method, path, **kwargs):
    try:
        r = S.request(method, BASE + path, timeout=30, **kwargs)
    except requests.RequestException as e:
        print(f"openapi fixtures: {method} {path}: {e}", file=sys.stderr)
        return None
    if r.status_code >= 300:
        print(f"openapi fixtures: {method} {path}: {r.status_code} {r.text[:200]}", file=sys.stderr)
        return None
    try:
        return r.json()
    except ValueError:
        return {}


USER, GROUP, PROJECT, REPO, PERM, ORG, KEY = (
    "openapi-user", "openapi-group", "openapiproj", "openapi-repo", "openapi-perm", "openapi-org", "openapi-key")

if call("POST", "/access/api/v2/users",
        json={"username": USER, "email": "openapi@example.com", "password": "Openapi-user-1"}) is not None:
    offer("username", USER); offer("name", USER)
if call("POST", "/access/api/v2/groups", json={"name": GROUP, "members": [USER]}) is not None:
    offer("name", GROUP)
for kind, name in (("Users", USER), ("Groups", GROUP)):
    attr = "userName" if kind == "Users" else "displayName"
    found = call("GET", f"/access/api/v1/scim/v2/{kind}", params={"filter": f'{attr} eq "{name}"'})
    for res in (found or {}).get("Resources", []):
        offer("id", res.get("id"))
for rid in ("User", "Group"):
    offer("id", rid)
offer("id", "urn:ietf:params:scim:schemas:core:2.0:User")

if call("POST", "/access/api/v1/projects", json={"project_key": PROJECT, "display_name": "OpenAPI project"}) is not None:
    offer("project_key", PROJECT)
if call("PUT", f"/artifactory/api/repositories/{REPO}", json={"rclass": "local", "packageType": "generic"}) is not None:
    offer("repo", REPO); offer("key", REPO)
    call("PUT", f"/access/api/v1/projects/_/attach/repositories/{REPO}/{PROJECT}")
call("PUT", f"/access/api/v1/projects/{PROJECT}/users/{USER}", json={"roles": ["Developer"]})
call("PUT", f"/access/api/v1/projects/{PROJECT}/groups/{GROUP}", json={"roles": ["Viewer"]})
role = call("POST", f"/access/api/v1/projects/{PROJECT}/roles",
            json={"name": "openapi-role", "type": "CUSTOM", "environments": ["DEV"], "actions": ["READ_REPOSITORY"]})
if role is not None:
    offer("role", "openapi-role")
offer("role", "Developer")

if call("PUT", f"/artifactory/api/v2/security/permissions/{PERM}", json={
        "name": PERM,
        "repo": {"repositories": [REPO], "include-patterns": ["**"],
                 "actions": {"users": {USER: ["read", "write"]}, "groups": {GROUP: ["read"]}}}}) is not None:
    offer("name", PERM)
offer("resource_type", "artifact")

key = call("POST", f"/access/api/v1/orgs/{ORG}/access_keys", json={"id": KEY, "password": "Openapi-key-1"})
if key is not None:
    offer("org", ORG); offer("id", KEY)
ent = call("POST", f"/access/api/v1/orgs/{ORG}/entitlements",
           json={"repo": REPO, "access": "r", "access_keys": [KEY], "tags": ["openapi"]})
if ent:
    offer("id", ent.get("id"))

token = call("POST", "/access/api/v1/tokens",
             data={"username": USER, "scope": "applied-permissions/user", "expires_in": "0", "force_revocable": "true"})
if token:
    offer("id", token.get("token_id"))

if call("POST", "/event/api/v1/subscriptions", json={
        "key": "openapi-sub", "enabled": True,
        "event_filter": {"domain": "user", "event_types": ["created"]},
        "handlers": [{"handler_type": "webhook", "url": DEAD}]}) is not None:
    offer("key", "openapi-sub")
if call("POST", "/access/api/v1/system/federation", json={
        "name": "openapi-fed", "url": DEAD, "entities": ["users", "groups"], "active": False}) is not None:
    offer("name", "openapi-fed")
offer("use_case", "federation")

print(json.dumps(values))
