"""Fixtures for scripts/conformance/openapi.sh: one of each kind of thing, made through the
API before the run, so generated requests also reach existing resources instead of only
404s. Prints a JSON list of rules `[path regex, parameter name, [values]]`: in an operation
whose path (the template, e.g. /access/api/v2/users/{username}) matches the regex, the
parameter may name these; openapi_hooks.py offers them beside the generated values. Every URL given to the server
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
rules: list[list] = []


def offer(param, value, path=""):
    """`value` names something that exists, for `param` in paths that match `path`."""
    if not value:
        return
    for rule in rules:
        if rule[0] == path and rule[1] == param:
            if value not in rule[2]:
                rule[2].append(value)
            return
    rules.append([path, param, [value]])


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
    offer("username", USER)
    offer("userName", USER)
    offer("name", USER, r"/users/\{name\}")
    offer("id", USER, r"/scim/v2/Users/")
if call("POST", "/access/api/v2/groups", json={"name": GROUP, "members": [USER]}) is not None:
    offer("name", GROUP, r"/groups/\{name\}")
for kind, name in (("Users", USER), ("Groups", GROUP)):
    attr = "userName" if kind == "Users" else "displayName"
    found = call("GET", f"/access/api/v1/scim/v2/{kind}", params={"filter": f'{attr} eq "{name}"'})
    for res in (found or {}).get("Resources", []):
        offer("id", res.get("id"), f"/scim/v2/{kind}/")
offer("id", "User", "/scim/v2/ResourceTypes/")
offer("id", "Group", "/scim/v2/ResourceTypes/")
offer("id", "urn:ietf:params:scim:schemas:core:2.0:User", "/scim/v2/Schemas/")
offer("id", "urn:ietf:params:scim:schemas:core:2.0:Group", "/scim/v2/Schemas/")

if call("POST", "/access/api/v1/projects", json={"project_key": PROJECT, "display_name": "OpenAPI project"}) is not None:
    offer("project_key", PROJECT)
if call("PUT", f"/artifactory/api/repositories/{REPO}", json={"rclass": "local", "packageType": "generic"}) is not None:
    offer("repo", REPO)
    offer("key", REPO, "/repositories/")
    call("PUT", f"/access/api/v1/projects/_/attach/repositories/{REPO}/{PROJECT}")
    call("PUT", f"/access/api/v1/projects/_/share/repositories/{REPO}")
call("PUT", f"/access/api/v1/projects/{PROJECT}/users/{USER}", json={"roles": ["Developer"]})
call("PUT", f"/access/api/v1/projects/{PROJECT}/groups/{GROUP}", json={"roles": ["Viewer"]})
if call("POST", f"/access/api/v1/projects/{PROJECT}/roles",
        json={"name": "openapi-role", "type": "CUSTOM", "environments": ["DEV"],
              "actions": ["READ_REPOSITORY"]}) is not None:
    offer("role", "openapi-role", "/projects/")
offer("role", "Developer", "/projects/")

if call("PUT", f"/artifactory/api/v2/security/permissions/{PERM}", json={
        "name": PERM,
        "repo": {"repositories": [REPO], "include-patterns": ["**"],
                 "actions": {"users": {USER: ["read", "write"]}, "groups": {GROUP: ["read"]}}}}) is not None:
    offer("name", PERM, r"/permissions/\{name\}")
offer("resource_type", "artifact")
offer("resource_type", "build")

if call("POST", f"/access/api/v1/orgs/{ORG}/access_keys", json={"id": KEY, "password": "Openapi-key-1"}) is not None:
    offer("org", ORG)
    offer("id", KEY, "/access_keys/")
ent = call("POST", f"/access/api/v1/orgs/{ORG}/entitlements",
           json={"repo": REPO, "access": "r", "access_keys": [KEY], "tags": ["openapi"]})
if ent:
    offer("id", ent.get("id"), "/entitlements/")

token = call("POST", "/access/api/v1/tokens",
             data={"username": USER, "scope": "applied-permissions/user", "expires_in": "0",
                   "force_revocable": "true"})
if token:
    offer("id", token.get("token_id"), "/tokens/")

if call("POST", "/event/api/v1/subscriptions", json={
        "key": "openapi-sub", "enabled": True,
        "event_filter": {"domain": "user", "event_types": ["created"]},
        "handlers": [{"handler_type": "webhook", "url": DEAD}]}) is not None:
    offer("key", "openapi-sub", "/subscriptions/")
if call("POST", "/access/api/v1/system/federation", json={
        "name": "openapi-fed", "url": DEAD, "entities": ["users", "groups"], "active": False}) is not None:
    offer("name", "openapi-fed", "/federation/")
offer("use_case", "federation")
if os.environ.get("GATEHOUSE_SERVICE_ID"):
    offer("access_id", os.environ["GATEHOUSE_SERVICE_ID"])

print(json.dumps(rules))
