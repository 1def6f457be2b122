"""moto's server mode with DynamoDB's transaction isolation.

moto rolls a cancelled transaction back by restoring a copy of the tables taken when the transaction
started, which erases whatever other requests wrote in the meantime; real DynamoDB isolates transactions
from each other and from single-item reads and writes. One lock around moto's DynamoDB item operations gives
that isolation back, so concurrency tests (two deliveries of one event at once) test our code, not the
emulator. Everything else (SQS long polls, Secrets Manager) stays concurrent.

Usage: python3 dev/moto_server.py -H 127.0.0.1 -p PORT   (the same arguments as python3 -m moto.server)
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])
