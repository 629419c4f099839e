"""A standard-library web app answering its message.txt on $PORT."""
import http.server
import os
import pathlib

MESSAGE = (pathlib.Path(__file__).parent / "message.txt").read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(MESSAGE)))
        self.end_headers()
        self.wfile.write(MESSAGE)


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print(f"python listening on {port}", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
