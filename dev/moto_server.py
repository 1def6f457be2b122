"""moto's server mode with DynamoDB's transaction isolation, at a cost that does not grow with the table.

moto rolls a cancelled transaction back by restoring a copy of the tables taken when the transaction
started. That copy erases whatever other requests wrote in the meantime (real DynamoDB isolates
transactions from each other and from single-item reads and writes), and copying the whole table on every
transaction makes each one slower as the table grows, so a load run of thousands of events stalls.

Here one lock around moto's DynamoDB item operations gives the isolation back, and transactions check every
condition before writing anything, so a cancelled one writes nothing and needs no copy; only a write that
fails after the checks (a malformed update) is undone, item by item. Concurrency tests (two deliveries of
one event at once) then test our code, not the emulator. Everything else (SQS long polls, Secrets Manager)
stays concurrent.

Fault injection (off unless asked for). So that the store's retries, timeouts and replays are tested
against the faults real DynamoDB produces, DynamoDB item operations (GetItem, PutItem, UpdateItem,
DeleteItem, Query, Scan, BatchGetItem, BatchWriteItem, TransactWriteItems, TransactGetItems) naming one
of the configured tables fail at a configured rate, drawn from a seeded generator per table (the same
request sequence on a table gets the same faults). Requests naming no configured table are never touched,
so that concurrent tests on one emulator do not hit each other. Kinds:

  throttle     HTTP 400 ProvisionedThroughputExceededException or ThrottlingException; for
               TransactWriteItems sometimes TransactionCanceledException with a ThrottlingError reason
  conflict     writes only (and TransactGetItems): TransactWriteItems / TransactGetItems get
               TransactionCanceledException with TransactionConflict for one item and None for the others;
               PutItem, UpdateItem, DeleteItem and BatchWriteItem get HTTP 400 TransactionConflictException
  internal     HTTP 500 InternalServerError
  lost_answer  writes only: the write is applied in full, then the connection is shut down before any
               byte of the answer is sent (the client sees a dropped connection)
  delay        {"kind": "delay", "ms": 300}: the request waits, then runs normally (a slow store)

A faulted request (other than lost_answer) writes nothing. Control, on the emulator's own port:

  POST   /_faults  {"seed": 7, "rate": 0.05, "kinds": ["throttle", "conflict", "internal", "lost_answer",
                    {"kind": "delay", "ms": 300}], "tables": ["t1"], "operations": ["PutItem"]}
                   adds or replaces the plan of those tables ("operations" is optional: all item operations)
  DELETE /_faults?table=t1   removes that table's plan (without ?table=, every plan)
  GET    /_faults  {"tables": {"t1": {"rate":..., "requests": n, "fired": {"throttle": 3, ...}}}}

The environment variable MOTO_FAULTS, with the same JSON as the POST, installs a plan at start (load runs).

Usage: python3 dev/moto_server.py -H 127.0.0.1 -p PORT   (the same arguments as python3 -m moto.server)
"""

import functools
import io
import json
import os
import random
import socket
import sys
import threading
import time
from urllib.parse import parse_qs

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def _transact_write_items(self, transact_items):
    """All conditions first, then the writes; nothing is written when any condition fails."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    planned = []  # (op_type, op, table_name, key, item before)
    errors = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        table_name = op["TableName"]
        if op_type == "Put":
            table = self.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        marker = (table_name, str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        failed = None
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                failed = ("ConditionalCheckFailed", "The conditional request failed", old)
        errors.append(failed or (None, None, None))
        before = current.to_json()["Attributes"] if current else None
        planned.append((op_type, op, table_name, key, before))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    done = []
    try:
        for op_type, op, table_name, key, before in planned:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            done.append((table_name, key, before))
    except Exception:
        for table_name, key, before in reversed(done):
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before)
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))


# --- fault injection -------------------------------------------------------------------------------

_TARGET_PREFIX = "DynamoDB_20120810."
_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_KINDS = {"throttle", "conflict", "internal", "lost_answer", "delay"}
_FAULTS_LOCK = threading.Lock()
_PLANS = {}  # table name -> _Plan


class _Plan:
    def __init__(self, seed, rate, kinds, operations):
        self.rng = random.Random(seed)
        self.seed = seed
        self.rate = float(rate)
        self.kinds = kinds  # [{"kind": name, ...}]
        self.operations = set(operations) if operations else None
        self.requests = 0
        self.fired = {}

    def describe(self):
        return {
            "seed": self.seed,
            "rate": self.rate,
            "kinds": self.kinds,
            "operations": sorted(self.operations) if self.operations else None,
            "requests": self.requests,
            "fired": dict(self.fired),
        }


def _parse_kinds(kinds):
    out = []
    for k in kinds:
        spec = {"kind": k} if isinstance(k, str) else dict(k)
        if spec.get("kind") not in _KINDS:
            raise ValueError("unknown fault kind %r (known: %s)" % (spec.get("kind"), sorted(_KINDS)))
        if spec["kind"] == "delay":
            spec["ms"] = int(spec.get("ms", 500))
        out.append(spec)
    return out


def install_plan(spec):
    """Adds or replaces the plan of the tables `spec` names (the JSON of POST /_faults)."""
    tables = spec.get("tables") or []
    if not tables:
        raise ValueError("a fault plan names its tables")
    rate = float(spec.get("rate", 0.0))
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be between 0 and 1")
    kinds = _parse_kinds(spec.get("kinds") or [])
    operations = spec.get("operations")
    unknown = set(operations or []) - _READS - _WRITES
    if unknown:
        raise ValueError("not item operations: %s" % sorted(unknown))
    seed = spec.get("seed", 0)
    with _FAULTS_LOCK:
        for table in tables:
            _PLANS[table] = _Plan(seed, rate, kinds, operations)


def _tables_of(operation, body):
    if "TableName" in body:
        return [body["TableName"]]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return list((body.get("RequestItems") or {}).keys())
    if operation in ("TransactWriteItems", "TransactGetItems"):
        names = []
        for entry in body.get("TransactItems") or []:
            for op in entry.values():
                if isinstance(op, dict) and "TableName" in op:
                    names.append(op["TableName"])
        return names
    return []


def _choose(operation, tables):
    """The fault for this request, if any, and the plan's table. Draws the same numbers whatever happens."""
    with _FAULTS_LOCK:
        for table in tables:
            plan = _PLANS.get(table)
            if plan is None or (plan.operations is not None and operation not in plan.operations):
                continue
            plan.requests += 1
            roll, pick, variant = plan.rng.random(), plan.rng.random(), plan.rng.random()
            if roll >= plan.rate:
                return None, None, variant
            usable = [
                k
                for k in plan.kinds
                if not (k["kind"] == "lost_answer" and operation not in _WRITES)
                and not (k["kind"] == "conflict" and operation not in _WRITES | {"TransactGetItems"})
            ]
            if not usable:
                return None, None, variant
            fault = usable[min(int(pick * len(usable)), len(usable) - 1)]
            plan.fired[fault["kind"]] = plan.fired.get(fault["kind"], 0) + 1
            return fault, table, variant
    return None, None, 0.0


def _json_response(start_response, status, payload, amz=True):
    data = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0" if amz else "application/json"),
        ("Content-Length", str(len(data))),
    ]
    if amz:
        headers.append(("x-amzn-RequestId", "fault-%d" % random.getrandbits(48)))
    start_response(status, headers)
    return [data]


def _error(start_response, status, code, message, **extra):
    payload = {"__type": "com.amazonaws.dynamodb.v20120810#" + code, "message": message}
    payload.update(extra)
    return _json_response(start_response, status, payload)


def _cancelled(start_response, body, reason, message):
    count = max(len(body.get("TransactItems") or []), 1)
    at = random.Random(json.dumps(body, sort_keys=True)).randrange(count)
    reasons = [{"Code": "None"} for _ in range(count)]
    reasons[at] = {"Code": reason, "Message": message}
    codes = ", ".join(r["Code"] for r in reasons)
    return _error(
        start_response,
        "400 Bad Request",
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons [%s]" % codes,
        CancellationReasons=reasons,
    )


def _control(environ, start_response):
    method = environ.get("REQUEST_METHOD")
    try:
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            install_plan(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        elif method == "DELETE":
            table = parse_qs(environ.get("QUERY_STRING", "")).get("table")
            with _FAULTS_LOCK:
                if table:
                    for t in table:
                        _PLANS.pop(t, None)
                else:
                    _PLANS.clear()
        elif method != "GET":
            return _json_response(start_response, "405 Method Not Allowed", {"error": "GET, POST or DELETE"}, False)
    except (ValueError, TypeError, AttributeError) as e:
        return _json_response(start_response, "400 Bad Request", {"error": str(e)}, False)
    with _FAULTS_LOCK:
        state = {"tables": {t: p.describe() for t, p in _PLANS.items()}}
    return _json_response(start_response, "200 OK", state, False)


def _drop_connection(environ):
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    # A connection error tells werkzeug the client is gone: it writes nothing and logs nothing.
    raise ConnectionAbortedError("fault injection: answer lost")


def _with_faults(call):
    @functools.wraps(call)
    def dispatch(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_faults":
            return _control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not _PLANS or not target.startswith(_TARGET_PREFIX):
            return call(self, environ, start_response)
        operation = target[len(_TARGET_PREFIX):]
        if operation not in _READS | _WRITES:
            return call(self, environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        raw = environ["wsgi.input"].read(int(length)) if length else environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return call(self, environ, start_response)
        fault, _table, variant = _choose(operation, _tables_of(operation, body))
        kind = fault["kind"] if fault else None
        if kind == "delay":
            time.sleep(fault["ms"] / 1000.0)
        elif kind == "throttle":
            if operation == "TransactWriteItems" and variant < 1 / 3:
                return _cancelled(start_response, body, "ThrottlingError", "Throughput exceeds the current capacity")
            if variant < 2 / 3:
                return _error(
                    start_response,
                    "400 Bad Request",
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                )
            return _error(start_response, "400 Bad Request", "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
        elif kind == "conflict":
            if operation in ("TransactWriteItems", "TransactGetItems"):
                return _cancelled(start_response, body, "TransactionConflict", "Transaction is ongoing for the item")
            return _error(
                start_response,
                "400 Bad Request",
                "TransactionConflictException",
                "Transaction is ongoing for the item",
            )
        elif kind == "internal":
            return _error(start_response, "500 Internal Server Error", "InternalServerError", "Internal server error")
        elif kind == "lost_answer":
            chunks = call(self, environ, lambda status, headers, exc_info=None: (lambda data: None))
            try:
                for _ in chunks:  # the write runs to the end
                    pass
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            _drop_connection(environ)
        return call(self, environ, start_response)

    return dispatch


DomainDispatcherApplication.__call__ = _with_faults(DomainDispatcherApplication.__call__)

if os.environ.get("MOTO_FAULTS"):
    install_plan(json.loads(os.environ["MOTO_FAULTS"]))

if __name__ == "__main__":
    main(sys.argv[1:])
