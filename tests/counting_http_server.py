"""A static HTTP server on 127.0.0.1 that logs every file it sends: ``python counting_http_server.py DIR LOG``.

Prints its port on the first line of stdout, then serves ``DIR`` until killed; each response body is logged
to ``LOG`` as ``path<TAB>bytes``, so a test can count what a client read over the network.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import threading


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    log_path = ""
    lock = threading.Lock()

    def copyfile(self, source, outputfile) -> None:  # the body of a GET: count what goes out
        start = source.tell()
        shutil.copyfileobj(source, outputfile)
        with self.lock, open(self.log_path, "a") as log:
            log.write(f"{self.path}\t{source.tell() - start}\n")

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def main() -> None:
    directory, log_path = sys.argv[1], sys.argv[2]
    CountingHandler.log_path = log_path
    handler = functools.partial(CountingHandler, directory=directory)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
