#!/usr/bin/env python3
"""Writes events/webhook/*.json: API Gateway HTTP API (payload 2.0) events for the webhook function, one per
Postmark webhook fixture plus the tracking routes and the error cases. The events carry the local password
`local-webhook-password` (the local stack and the tests create the secret with that value).

Usage: python3 dev/make-webhook-events.py   (run from the repository root; rewrites the files)
"""
import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "shared/postmark/tests/fixtures/webhooks"
OUT = ROOT / "events/webhook"
PASSWORD = "local-webhook-password"


def event(method, path, body=None, query=None, headers=None, b64=False):
    query = query or {}
    raw_query = "&".join(f"{k}={v}" for k, v in query.items())
    headers = {"user-agent": "Postmark", **(headers or {})}
    if body is not None:
        headers.setdefault("content-type", "application/json")
    e = {
        "version": "2.0",
        "routeKey": f"{method} {path if not path.startswith('/t/') else path.rsplit('/', 1)[0] + '/{token}'}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "3.134.147.250",
                "userAgent": headers["user-agent"],
            },
            "requestId": "local-request",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "27/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795780800000,
        },
        "isBase64Encoded": b64,
    }
    if query:
        e["queryStringParameters"] = query
    if body is not None:
        e["body"] = base64.b64encode(body.encode()).decode() if b64 else body
    return e


def write(name, e):
    (OUT / f"{name}.json").write_text(json.dumps(e, indent=2) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for fixture in sorted(FIXTURES.glob("*.json")):
        body = fixture.read_text()
        write(
            f"postmark-{fixture.stem}",
            event(
                "POST",
                "/wh/postmark",
                body,
                {"password": PASSWORD},
                {"x-pm-webhook-trace-id": f"trace-{fixture.stem}"},
            ),
        )
    delivery = (FIXTURES / "symfony_delivery.json").read_text()
    basic = base64.b64encode(f"postmark:{PASSWORD}".encode()).decode()
    write("postmark-basic-auth", event("POST", "/wh/postmark", delivery, None, {"authorization": f"Basic {basic}"}))
    write("postmark-wrong-password", event("POST", "/wh/postmark", delivery, {"password": "wrong"}))
    write("postmark-no-password", event("POST", "/wh/postmark", delivery))
    write("postmark-not-json", event("POST", "/wh/postmark", "this is not json", {"password": PASSWORD}))
    write(
        "postmark-unknown-record-type",
        event("POST", "/wh/postmark", json.dumps({"RecordType": "Inbound", "MessageID": "x"}), {"password": PASSWORD}),
    )
    write(
        "postmark-base64-body",
        event("POST", "/wh/postmark", delivery, {"password": PASSWORD}, b64=True),
    )
    # Tracking routes: the token below is not signed with the local key, so they answer 404; tests sign
    # their own tokens into copies of these events.
    write("track-open", event("GET", "/t/o/TOKEN", headers={"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15"}))
    write("track-click", event("GET", "/t/c/TOKEN", headers={"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15"}))
    write("track-click-head", event("HEAD", "/t/c/TOKEN", headers={"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15"}))


if __name__ == "__main__":
    main()
