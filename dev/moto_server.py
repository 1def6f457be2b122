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

Usage: python3 dev/moto_server.py -H 127.0.0.1 -p PORT   (the same arguments as python3 -m moto.server)
"""

import functools
import sys
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
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

if __name__ == "__main__":
    main(sys.argv[1:])
