#!/usr/bin/env python3
"""A workshop-style Python recommendation service, the comparison for CPU per request.

    PORT=N PERSONALIZE_ARN=… ITEMS_TABLE=… python benches/boto3-service.py

What the Amazon Personalize samples serve with boto3: `GET /recommendations?user_id=…&count=…` asks
Personalize (GetRecommendations) for ranked ids and joins item metadata from DynamoDB
(BatchGetItem), answering the same JSON list as our service; `GET /health` answers
`{"status":"ok"}`. Items are kept once fetched, as our service's item cache keeps them, so a warm
request makes one Personalize call in both. boto3 finds the upstreams through the same
AWS_ENDPOINT_URL_* variables. Run it from a virtualenv outside the repository:

    venv=$(tests/python-tools benches/boto3/requirements.txt)
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import boto3

personalize = boto3.client("personalize-runtime")
dynamodb = boto3.client("dynamodb")
campaign = os.environ["PERSONALIZE_ARN"]
table = os.environ["ITEMS_TABLE"]
items = {}


def plain(attributes):
    """A DynamoDB item as plain JSON values: strings as strings, numbers as numbers."""
    return {k: (float(v["N"]) if "N" in v else v.get("S")) for k, v in attributes.items()}


def recommendations(user_id, count):
    ranked = personalize.get_recommendations(campaignArn=campaign, userId=user_id, numResults=count)
    ids = [entry["itemId"] for entry in ranked["itemList"]]
    missing = [i for i in dict.fromkeys(ids) if i not in items]
    for start in range(0, len(missing), 100):
        keys = [{"id": {"S": i}} for i in missing[start : start + 100]]
        found = dynamodb.batch_get_item(RequestItems={table: {"Keys": keys}})
        for attributes in found["Responses"].get(table, []):
            item = plain(attributes)
            items[item["id"]] = item
    return [items[i] for i in ids if i in items]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/health":
            status, body = 200, {"status": "ok"}
        elif url.path == "/recommendations" and query.get("user_id"):
            count = int(query.get("count", ["10"])[0])
            status, body = 200, recommendations(query["user_id"][0], count)
        else:
            status, body = 400, {"error": "user_id is required"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
