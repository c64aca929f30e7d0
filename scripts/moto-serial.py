"""moto's DynamoDB-compatible server with requests handled one at a time.

moto applies a TransactWriteItems by snapshotting the table and restoring the snapshot when a
condition fails, so in its threaded server two concurrent transactions can undo each other's
writes. DynamoDB isolates transactions; serialising moto's request handling restores that
guarantee for the tests (connections stay concurrent, request handling does not).

usage: python3 scripts/moto-serial.py PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialised(environ, start_response):
    with lock:
        return list(app(environ, start_response))


run_simple("127.0.0.1", port, serialised, threaded=True)
